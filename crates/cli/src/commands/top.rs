//! `rampart top`: a live terminal view of the host, services, versions and instances,
//! from `GET /api/v1/telemetry` (the latest point of each series).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use reqwest::Method;
use serde_json::Value;

use crate::cli::TopArgs;
use crate::client::ApiClient;
use crate::exit::CliResult;

/// The latest value of each series, by metric and labels.
struct Latest<'a>(Vec<(&'a str, &'a serde_json::Map<String, Value>, f64)>);

impl<'a> Latest<'a> {
    fn of(series: &'a Value) -> Self {
        Latest(
            series
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let value = s["points"].as_array()?.last()?.get(1)?.as_f64()?;
                    Some((s["metric"].as_str()?, s["labels"].as_object()?, value))
                })
                .collect(),
        )
    }

    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .iter()
            .find(|(m, l, _)| {
                *m == metric
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Distinct values of `label` among series of `metric`.
    fn label_values(&self, metric: &str, label: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let mut out: Vec<(String, BTreeMap<String, String>)> = self
            .0
            .iter()
            .filter(|(m, _, _)| *m == metric)
            .filter_map(|(_, l, _)| {
                let value = l.get(label)?.as_str()?.to_string();
                let all = l
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                Some((value, all))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// One frame of the view, as text.
pub fn render(telemetry: &Value) -> String {
    let mut out = String::new();
    let host = Latest::of(&telemetry["host"]);
    out.push_str(&format!(
        "host  cpu {} %  memory {} %  load {} {} {}  processes {}\n\n",
        num(host.get("cpu_percent", &[("cpu", "total")]), 1),
        num(host.get("memory_used_percent", &[]), 1),
        num(host.get("load1", &[]), 2),
        num(host.get("load5", &[]), 2),
        num(host.get("load15", &[]), 2),
        num(host.get("processes", &[]), 0),
    ));
    out.push_str(&format!(
        "{:<16} {:<18} {:>5} {:>9} {:>7} {:>8} {:>9}\n",
        "SERVICE", "VERSION", "INST", "REQ/S", "ERR %", "P95 MS", "IN FLIGHT"
    ));
    let services = telemetry["services"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, series) in &services {
        let latest = Latest::of(series);
        let in_flight = num(latest.get("in_flight", &[]), 0);
        let versions = latest.label_values("routable_instances", "version");
        if versions.is_empty() {
            out.push_str(&format!(
                "{name:<16} {:<18} {:>5} {:>9} {:>7} {:>8} {in_flight:>9}\n",
                "-", "-", "-", "-", "-"
            ));
        }
        for (version, labels) in &versions {
            let set = labels.get("set").map(String::as_str).unwrap_or("");
            let key = [("version", version.as_str()), ("set", set)];
            out.push_str(&format!(
                "{name:<16} {:<18} {:>5} {:>9} {:>7} {:>8} {in_flight:>9}\n",
                format!("{version} ({set})"),
                num(latest.get("routable_instances", &key), 0),
                num(latest.get("requests_per_second", &key), 1),
                num(latest.get("error_rate_percent", &key), 1),
                num(latest.get("p95_ms", &key), 1),
            ));
        }
        for (instance, labels) in latest.label_values("instance_restarts", "instance") {
            let key = [("instance", instance.as_str())];
            out.push_str(&format!(
                "  {:<14} {:<18} cpu {:>6} %  rss {:>8} MiB  fds {:>5}  restarts {}\n",
                instance,
                labels.get("version").map(String::as_str).unwrap_or(""),
                num(latest.get("instance_cpu_percent", &key), 1),
                num(
                    latest
                        .get("instance_rss_bytes", &key)
                        .map(|b| b / 1_048_576.0),
                    1
                ),
                num(latest.get("instance_open_fds", &key), 0),
                num(latest.get("instance_restarts", &key), 0),
            ));
        }
    }
    if services.is_empty() {
        out.push_str("no services\n");
    }
    out
}

pub async fn run(args: TopArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let live = !args.once && std::io::stdout().is_terminal();
    loop {
        let telemetry: Value = client
            .request(Method::GET, "/api/v1/telemetry?since=30s", None)
            .await?;
        let frame = render(&telemetry);
        let mut stdout = std::io::stdout().lock();
        if live {
            // Home and clear, so the view redraws in place.
            let _ = write!(stdout, "\x1b[H\x1b[2J");
        }
        let _ = write!(stdout, "{frame}");
        let _ = stdout.flush();
        if !live {
            return Ok(());
        }
        tokio::time::sleep(args.interval.get()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn a_frame_shows_host_services_versions_and_instances() {
        let telemetry = serde_json::json!({
            "host": [
                { "metric": "cpu_percent", "labels": { "cpu": "total" }, "points": [[1, 10.0], [2, 12.5]] },
                { "metric": "memory_used_percent", "labels": {}, "points": [[2, 41.0]] },
                { "metric": "load1", "labels": {}, "points": [[2, 0.5]] }
            ],
            "services": { "web": [
                { "metric": "in_flight", "labels": {}, "points": [[2, 3.0]] },
                { "metric": "routable_instances", "labels": { "set": "stable", "version": "v1" }, "points": [[2, 2.0]] },
                { "metric": "requests_per_second", "labels": { "set": "stable", "version": "v1" }, "points": [[2, 26.4]] },
                { "metric": "p95_ms", "labels": { "set": "stable", "version": "v1" }, "points": [[2, 4.25]] },
                { "metric": "instance_restarts", "labels": { "version": "v1", "instance": "v1-0" }, "points": [[2, 1.0]] },
                { "metric": "instance_cpu_percent", "labels": { "version": "v1", "instance": "v1-0" }, "points": [[2, 7.5]] },
                { "metric": "instance_rss_bytes", "labels": { "version": "v1", "instance": "v1-0" }, "points": [[2, 10485760.0]] }
            ]}
        });
        let frame = render(&telemetry);
        assert!(
            frame.starts_with("host  cpu 12.5 %  memory 41.0 %  load 0.50"),
            "{frame}"
        );
        let row = frame.lines().find(|l| l.starts_with("web")).expect(&frame);
        assert!(
            row.contains("v1 (stable)") && row.contains("26.4") && row.contains("4.2"),
            "{row}"
        );
        let instance = frame
            .lines()
            .find(|l| l.trim_start().starts_with("v1-0"))
            .expect(&frame);
        assert!(
            instance.contains("cpu    7.5 %")
                && instance.contains("rss     10.0 MiB")
                && instance.contains("restarts 1"),
            "{instance}"
        );
    }
}
