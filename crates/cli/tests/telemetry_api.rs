//! The telemetry history API and the health score, over real HTTP against the real
//! binary: a healthy process-backend service beside a static one whose only
//! upstream refuses every connection.

mod support;

use std::time::{Duration, Instant};

use support::{RampartServer, client};

fn series<'a>(list: &'a serde_json::Value, metric: &str) -> Vec<&'a serde_json::Value> {
    list.as_array()
        .map(|all| all.iter().filter(|s| s["metric"] == metric).collect())
        .unwrap_or_default()
}

#[test]
fn telemetry_history_and_the_health_score_tell_a_failing_service_from_a_healthy_one() {
    let (shop, broken, closed) = (
        support::free_addr(),
        support::free_addr(),
        support::free_addr(),
    );
    let services = format!(
        "{}\n[[service]]\nname = \"broken\"\nlisten = \"{broken}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{closed}\"]\n",
        support::sample_app_service("shop", shop, 2, "")
    );
    let server = RampartServer::start_with_server("\n[telemetry]\ninterval = \"1s\"", &services);
    let http = client();
    // Traffic to both for a few collections.
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = loop {
        for _ in 0..10 {
            let ok = http.get(format!("http://{shop}/")).send().expect("shop");
            assert_eq!(ok.status(), 200);
            let failed = http
                .get(format!("http://{broken}/"))
                .send()
                .expect("broken");
            assert!(failed.status().is_server_error());
        }
        let history = server.get_json("/api/v1/telemetry?since=5m&step=1s");
        let rps = series(&history["services"]["shop"], "requests_per_second");
        let broken_errors = series(&history["services"]["broken"], "error_rate_percent");
        // Both services' series, each collected from its own window, must be in.
        if (rps
            .first()
            .and_then(|s| s["points"].as_array())
            .is_some_and(|p| p.len() >= 3)
            && !broken_errors.is_empty())
            || Instant::now() > deadline
        {
            break history;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(history["interval_secs"], 1.0, "{history}");
    assert_eq!(history["step_secs"], 1.0);
    let host = &history["host"];
    for metric in [
        "cpu_percent",
        "memory_available_bytes",
        "load1",
        "processes",
    ] {
        assert!(!series(host, metric).is_empty(), "{metric}: {history}");
    }
    assert!(
        series(host, "cpu_percent")
            .iter()
            .any(|s| s["labels"]["cpu"] == "total"),
        "{history}"
    );
    let shop_series = &history["services"]["shop"];
    let rps = series(shop_series, "requests_per_second");
    assert_eq!(rps[0]["labels"]["set"], "stable", "{history}");
    assert_eq!(rps[0]["labels"]["version"], "v1");
    let points = rps[0]["points"].as_array().expect("points");
    assert!(points.len() >= 3, "{history}");
    let (first_at, second_at) = (
        points[0][0].as_u64().expect("time"),
        points[1][0].as_u64().expect("time"),
    );
    assert!(second_at > first_at, "oldest first");
    let rss = series(shop_series, "instance_rss_bytes");
    assert_eq!(rss.len(), 2, "one per instance: {history}");
    let broken_errors = series(&history["services"]["broken"], "error_rate_percent");
    assert_eq!(
        broken_errors[0]["points"][0][1], 100.0,
        "every request to broken failed: {history}"
    );
    assert!(history["memory_bound_bytes"].as_u64().expect("bound") > 0);

    // A coarser step averages the points into fewer.
    let per_minute = server.get_json("/api/v1/telemetry?since=5m&step=1m");
    assert_eq!(per_minute["step_secs"], 60.0);

    let bad = http
        .get(format!("{}/api/v1/telemetry?since=yesterday", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("bad since");
    assert_eq!(bad.status(), 400);
    let problem: serde_json::Value = bad.json().expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("`since`"),
        "{problem}"
    );

    let health: serde_json::Value = http
        .get(format!("{}/health/metrics", server.api))
        .send()
        .and_then(|r| r.json())
        .expect("health metrics");
    let score = health["health_score"].as_f64().expect("score");
    assert!(
        score <= 60.0,
        "a service failing every request costs 40 points: {health}"
    );
    assert!(
        health["active_alerts"].as_u64().expect("alerts") >= 1,
        "{health}"
    );
    assert!(health["critical_alerts"].is_u64(), "{health}");
    let summary = &health["metrics_summary"];
    let broken_summary = summary["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "broken")
        .expect("broken in the summary");
    assert_eq!(broken_summary["error_rate_percent"], 100.0, "{health}");
    let counted_errors = health["score_parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["part"] == "service_errors" && p["counted"] == true)
        .expect("a counted error part");
    assert_eq!(counted_errors["subject"], "service/broken", "{health}");
    assert_eq!(counted_errors["penalty"], 40.0);
    assert!(
        health["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["subject"] == "service/broken"),
        "{health}"
    );
}
