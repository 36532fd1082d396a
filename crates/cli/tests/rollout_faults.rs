//! Faults the controller must survive, end to end on the real binary under real
//! traffic: a new version whose instances never become ready, and a database that
//! refuses writes (another process holds SQLite's write lock) in the middle of a
//! rollout. Each rollout reaches its documented end, users are served throughout,
//! and the service takes the next deploy. (The same faults and more are injected
//! into the engine with fakes and paused time in `rampart-engine`'s
//! `fault_injection` tests.)
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LATENCY_SLACK, LoadGen, RampartServer, assert_serves, free_addr, history, processes_matching,
    rampart_bin, short_rollout_service,
};

const SERVICE: &str = "shop";
const RPS: u32 = 100;
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);
/// What a v2 instance runs instead of the app: it never listens, so it is never ready.
const HANGING: &str = "sleep 3607";

/// v2's instances never become ready (the backend's own ready timeout is far away);
/// every other version is the sample app. The start deadline is 3 s.
fn shop_with_a_hanging_v2(listen: SocketAddr) -> String {
    let exe = rampart_bin().replace('\'', r"'\''");
    format!(
        r#"[[service]]
name = "{SERVICE}"
listen = "{listen}"

[service.backend]
kind = "process"
command = "case {{version}} in v2) exec {HANGING};; *) exec '{exe}' sample-app --listen 127.0.0.1:{{port}} --version {{version}};; esac"
instances = 2
ready_timeout = "60s"
stop_grace = "1s"

[service.strategy]
steps = [{{ weight = 20, hold = "2s" }}, {{ weight = 50, hold = "2s" }}]
scale_down_delay = "2s"
start_deadline = "3s"

[service.analysis]
judge = "sequential"
min_requests = 50
{LATENCY_SLACK}

[service.router]
drain_grace = "2s"
"#
    )
}

fn promote(server: &RampartServer) {
    let (status, body) =
        server.post_json(&format!("/api/v1/services/{SERVICE}/promote"), &json!({}));
    assert_eq!(status, 200, "promote: {body}");
}

#[test]
fn a_start_that_hangs_ends_failed_at_its_deadline_and_the_next_deploy_goes_through() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop_with_a_hanging_v2(listen));
    let url = format!("http://{listen}/version");
    let load = LoadGen::start(url.clone(), RPS);

    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(detail["summary"]["state"], "failed", "{}", history(&detail));
    assert!(
        history(&detail).contains("start deadline"),
        "ended by the start deadline:\n{}",
        history(&detail)
    );
    // What v2 started is stopped in the background.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_matching(HANGING).is_empty() {
        assert!(Instant::now() < deadline, "v2's instances were not stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_serves(&url, "v1", "v1 serves after the failed start");

    // The service is not locked: the next version rolls out.
    let next = server.deploy(SERVICE, "v3", json!({}));
    server.wait_state(&next, "progressing", ROLLOUT_TIMEOUT);
    promote(&server);
    let detail = server.wait_terminal(&next, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    assert_serves(&url, "v3", "v3 serves once promoted");
    let report = load.stop();
    assert_eq!(
        report.failed, 0,
        "users saw failures: {:?}",
        report.failures
    );
}

#[test]
fn a_busy_database_mid_rollout_delays_it_without_losing_it() {
    let listen = free_addr();
    let server =
        RampartServer::start_serving(&short_rollout_service(SERVICE, listen, ["2s", "2s"], "5m"));
    let url = format!("http://{listen}/version");
    let load = LoadGen::start(url.clone(), RPS);
    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "progressing", ROLLOUT_TIMEOUT);

    // Another process takes SQLite's write lock for 12 s: every commit rampart tries
    // meanwhile fails with "database is locked" after the store's busy timeout.
    let db = server.data_dir().join("rampart.db");
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open the database");
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the write lock");
        std::thread::sleep(Duration::from_secs(12));
        conn.execute_batch("COMMIT")
            .expect("release the write lock");
    });
    holder.join().expect("lock holder");

    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    assert!(
        server
            .log()
            .contains("cannot commit the rollout's next state"),
        "the lock was in the rollout's way (a commit failed and was retried):\n{}",
        server.log()
    );
    assert_serves(&url, "v2", "v2 serves once promoted");
    let report = load.stop();
    assert_eq!(
        report.failed, 0,
        "users saw failures: {:?}",
        report.failures
    );

    let next = server.deploy(SERVICE, "v3", json!({}));
    server.wait_state(&next, "progressing", ROLLOUT_TIMEOUT);
}
