//! Renders a registry as Prometheus text exposition format 0.0.4.
//!
//! prometheus-client writes OpenMetrics text, whose counter families are named
//! without the `_total` suffix and which ends with `# EOF`. Prometheus' classic text
//! parser (and `promtool check metrics`) expects the family name to equal the sample
//! name, so counters are renamed here and the OpenMetrics-only lines dropped.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut open_metrics = String::new();
    encode(&mut open_metrics, registry)?;
    Ok(to_classic_text(&open_metrics))
}

fn to_classic_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(&name) {
                let kind = if line.starts_with("# HELP ") {
                    "HELP"
                } else {
                    "TYPE"
                };
                out.push_str(&format!("# {kind} {name}_total {tail}\n"));
                continue;
            }
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or("");
        if sample_name.ends_with("_created")
            && counters
                .iter()
                .any(|c| sample_name == format!("{c}_created"))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerMetrics;

    #[test]
    fn counters_are_named_like_their_samples_and_eof_is_dropped() {
        let mut registry = Registry::default();
        let metrics = ServerMetrics::register(&mut registry, "1.2.3", Default::default());
        metrics.observe_request("/api/v1/services", "GET", 200);
        metrics.auth_failure("missing");
        let text = render(&registry).expect("render");
        assert!(
            text.contains("# TYPE rampart_http_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains(
            "rampart_http_requests_total{route=\"/api/v1/services\",method=\"GET\",status=\"200\"} 1\n"
        ));
        assert!(text.contains("rampart_build_info{version=\"1.2.3\"} 1\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn client_chosen_methods_do_not_create_series() {
        let mut registry = Registry::default();
        let metrics = ServerMetrics::register(&mut registry, "1.2.3", Default::default());
        for i in 0..50 {
            metrics.observe_request("unmatched", &format!("X{i}"), 405);
        }
        metrics.observe_request("unmatched", "get", 405);
        metrics.observe_request("unmatched", "PATCH", 405);
        let text = render(&registry).expect("render");
        assert!(text.contains(
            "rampart_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 51\n"
        ), "{text}");
        assert!(text.contains("method=\"PATCH\""));
        assert_eq!(
            text.matches("rampart_http_requests_total{").count(),
            2,
            "{text}"
        );
    }
}
