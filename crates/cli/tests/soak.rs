//! Soak: rollouts and rollbacks back to back for minutes under 500 requests/s
//! through the router, against the real binary. No request may fail, rampart's
//! memory must stay flat after a one-minute warm-up (RSS growth at most 10 MB) and so must its
//! open file descriptors.
//!
//! Growth is the median RSS of the run's last 30 seconds against the median of the
//! first 30 seconds after warm-up. One sample is no baseline: the allocator keeps
//! and returns segments as it goes, and single samples a few seconds apart moved by
//! up to 8 MB with no trend (`docs/BENCHMARKS.md`, "Soak"). A sample more than
//! 64 MB above the baseline stops the run at once.
//!
//! The CI form runs 2 minutes; `RAMPART_SOAK_SECS=1800` (bench/soak.sh) runs 30.
//! The service is static (two sample-apps this test runs), so each cycle exercises
//! the controller, the store and its audit log, and the router's table swaps and
//! drains, without process start-up dominating the time.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{LoadGen, RampartServer, free_addr, history, sample_app};

const RPS: u32 = 500;
const CI_SECS: u64 = 120;
/// Memory and descriptors are measured from here on: by then every pool, cache and
/// window has reached its working size. Under this load RSS climbs for about the
/// first minute (allocator segments, SQLite page caches of the writer and the read
/// pool as the file grows) and then moves within a few MB (measured by hand over
/// 600 rollouts at 500 requests/s: 66 to 71 MB).
const WARM_UP: Duration = Duration::from_secs(60);
const MAX_RSS_GROWTH_KB: u64 = 10 * 1024;
/// How much of the run's start (after warm-up) and end each median covers.
const MEDIAN_SPAN: Duration = Duration::from_secs(30);
/// A runaway: no allocator noise is this large.
const RUNAWAY_KB: u64 = 64 * 1024;
/// Pooled upstream connections and the API's keep-alive connections come and go.
const FD_SLACK: usize = 16;
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .expect("VmRSS of rampart")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("rampart's fd table")
        .count()
}

fn service(listen: SocketAddr, stable: SocketAddr) -> String {
    format!(
        r#"[[service]]
name = "soak"
listen = "{listen}"

[service.backend]
kind = "static"
stable = ["{stable}"]

[service.strategy]
steps = [{{ weight = 50, hold = "1h" }}]
progress_deadline = "1h"

[service.analysis]
judge = "threshold"
interval = "1h"

[service.router]
drain_grace = "2s"
"#
    )
}

#[test]
fn rollouts_and_rollbacks_back_to_back_under_load_fail_no_request_and_leak_nothing() {
    let secs = std::env::var("RAMPART_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SECS);
    let (listen, a, b) = (free_addr(), free_addr(), free_addr());
    let _a = sample_app(a, "a");
    let _b = sample_app(b, "b");
    let server = RampartServer::start_serving(&service(listen, a));
    let pid = server.child.id();
    let load = LoadGen::start(format!("http://{listen}/"), RPS);

    let started = Instant::now();
    let mut baseline: Option<(u64, usize)> = None;
    let (mut peak_rss, mut peak_fds) = (0, 0);
    // (seconds since start, RSS in kB) after warm-up.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut printed_at = Duration::ZERO;
    let (mut rollbacks, mut promotions) = (0u32, 0u32);
    let (mut stable, mut other) = (a, b);
    let mut cycle = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        cycle += 1;
        let version = format!("v{}", cycle + 1);
        let (status, body) = server.post_json(
            "/api/v1/services/soak/deployments",
            &json!({ "version": version, "canary": [other.to_string()], "reason": "soak" }),
        );
        assert_eq!(status, 201, "cycle {cycle}: {body}");
        let id = body["id"].as_str().expect("id").to_string();
        server.wait_state(&id, "progressing", STATE_TIMEOUT);
        std::thread::sleep(Duration::from_millis(500));
        // Every third cycle promotes; the others roll back.
        let (action, end) = if cycle.is_multiple_of(3) {
            ("promote", "succeeded")
        } else {
            ("rollback", "rolled_back")
        };
        let (status, body) = server.post_json(
            &format!("/api/v1/services/soak/{action}"),
            &json!({ "reason": "soak" }),
        );
        assert_eq!(status, 200, "cycle {cycle} {action}: {body}");
        let detail = server.wait_terminal(&id, STATE_TIMEOUT);
        assert_eq!(
            detail["summary"]["state"],
            end,
            "cycle {cycle}: {}",
            history(&detail)
        );
        if end == "succeeded" {
            promotions += 1;
            std::mem::swap(&mut stable, &mut other);
        } else {
            rollbacks += 1;
        }

        let (rss, fds) = (rss_kb(pid), open_fds(pid));
        if started.elapsed() >= printed_at + Duration::from_secs(60) {
            printed_at = started.elapsed();
            eprintln!(
                "soak: {} s, cycle {cycle}: RSS {rss} kB, {fds} fds",
                started.elapsed().as_secs()
            );
        }
        if started.elapsed() >= WARM_UP {
            let (base_rss, base_fds) = *baseline.get_or_insert((rss, fds));
            samples.push((started.elapsed().as_secs_f64(), rss));
            peak_rss = peak_rss.max(rss);
            peak_fds = peak_fds.max(fds);
            assert!(
                rss <= base_rss + RUNAWAY_KB,
                "RSS ran away from {base_rss} kB to {rss} kB after {cycle} cycles"
            );
            assert!(
                fds <= base_fds + FD_SLACK,
                "open descriptors grew from {base_fds} to {fds} after {cycle} cycles"
            );
        }
    }
    let report = load.stop();
    let (_, base_fds) = baseline.expect("the soak outlasted its warm-up");
    let end_fds = open_fds(pid);
    let (first_at, last_at) = (samples[0].0, samples[samples.len() - 1].0);
    let span = MEDIAN_SPAN.as_secs_f64();
    let base_rss = median_rss(&samples, first_at, first_at + span);
    let end_rss = median_rss(&samples, last_at - span, last_at);
    eprintln!(
        "soak: {secs} s, {cycles} cycles ({rollbacks} rollbacks, {promotions} promotions), \
         {sent} requests ({failed} failed); RSS median after warm-up {base_rss} kB, peak \
         {peak_rss} kB, median at the end {end_rss} kB (growth {growth:+} kB); fds after \
         warm-up {base_fds}, peak {peak_fds}, end {end_fds}",
        growth = end_rss as i64 - base_rss as i64,
        cycles = cycle,
        sent = report.sent,
        failed = report.failed,
    );
    assert_eq!(
        report.failed, 0,
        "requests failed during the soak: {:?}",
        report.failures
    );
    assert!(
        report.sent >= secs * u64::from(RPS) / 2,
        "the load ran: {} requests",
        report.sent
    );
    assert!(
        end_rss <= base_rss + MAX_RSS_GROWTH_KB,
        "RSS grew from a median of {base_rss} kB after warm-up to {end_rss} kB at the end"
    );
    assert!(end_fds <= base_fds + FD_SLACK);
}

/// The median RSS of the samples taken between `from` and `to` seconds.
fn median_rss(samples: &[(f64, u64)], from: f64, to: f64) -> u64 {
    let mut within: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| (from..=to).contains(at))
        .map(|&(_, rss)| rss)
        .collect();
    within.sort_unstable();
    within[within.len() / 2]
}
