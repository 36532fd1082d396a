//! Live updates over server-sent events.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use support::{RampartServer, free_addr, sample_app_service};

#[test]
fn rollout_transitions_stream_live_and_the_stream_ends_on_shutdown() {
    let listen = free_addr();
    let mut server = RampartServer::start_serving(&sample_app_service(
        "web",
        listen,
        1,
        "[service.strategy]\nsteps = [{ weight = 50, hold = \"1h\" }]\nprogress_deadline = \"1h\"\n",
    ));
    let http = reqwest::blocking::Client::builder()
        .timeout(None::<Duration>)
        .build()
        .expect("client");
    let stream = http
        .get(format!("{}/api/v1/events?service=web", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("events");
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let id = server.deploy("web", "v2", serde_json::json!({}));

    // Read until the rollout reports it is progressing (validating and starting come first).
    let mut lines = BufReader::new(stream).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let line = lines.next().expect("stream open").expect("read");
        if let Some(data) = line.strip_prefix("data: ") {
            let event: serde_json::Value = serde_json::from_str(data).expect("json event");
            assert_eq!(event["service"], "web");
            if event["event"] == "transition" {
                assert_eq!(event["deployment_id"], id.as_str());
                let to = event["transition"]["to"]["state"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                seen.push(to.clone());
                if to == "progressing" {
                    break;
                }
            }
        }
    }
    assert_eq!(
        seen,
        ["validating", "starting", "progressing"],
        "transitions in order"
    );

    // An open stream does not hold up shutdown.
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
}
