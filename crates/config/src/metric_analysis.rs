//! `[[metric_provider]]` and `[[service.analysis.metric]]`: analysis from the user's
//! own metrics (Prometheus first). The model, and its checks for meaning: unique
//! names, known providers, placeholders in the query, the success condition or the
//! comparison, limits. The structure check already placed every key and type.

use rampart_core::analysis::{
    Comparison, Criterion, Direction, MetricSpec, QueryTemplate, SuccessCondition,
};
use serde::{Deserialize, Serialize};

use crate::diagnostic::Finding;
use crate::duration::Duration;
use crate::locate::Locator;
use crate::model::Config;
use crate::rules;
use crate::suggest::closest;

/// One `[[metric_provider]]`: where metrics of the user's own are queried, chosen by
/// `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricProviderConfig {
    /// A Prometheus server's HTTP API (`/api/v1/query`).
    Prometheus(PrometheusProviderConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProviderConfig {
    pub name: String,
    /// Base URL of the server, such as "http://127.0.0.1:9090".
    pub address: String,
    /// A query that takes longer counts as a failed query (provider unavailable).
    #[serde(default = "default_provider_timeout")]
    pub timeout: Duration,
}

impl MetricProviderConfig {
    pub fn name(&self) -> &str {
        match self {
            Self::Prometheus(c) => &c.name,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Prometheus(_) => "prometheus",
        }
    }
}

fn default_provider_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One `[[service.analysis.metric]]`: a query whose value passes or fails the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisMetricConfig {
    pub name: String,
    /// The `[[metric_provider]]` to ask.
    pub provider: String,
    /// The query; `{canary}` and `{stable}` stand for the versions' names.
    pub query: String,
    /// A condition on the canary's value, such as "result < 0.05".
    pub success: Option<String>,
    /// Instead of `success`: the canary's value against stable's (the same query
    /// about stable), `lower_is_better` or `higher_is_better`.
    pub compare: Option<Direction>,
    /// With `compare`: percent of stable's value by which the canary may be worse.
    #[serde(default)]
    pub tolerance_pct: f64,
    /// With `compare`: an absolute amount by which the canary may always be worse.
    #[serde(default)]
    pub tolerance: f64,
    /// How often the query runs; the analysis interval when not set.
    pub interval: Option<Duration>,
    /// Failed measurements allowed over the rollout; one more rolls back.
    #[serde(default)]
    pub failure_limit: u32,
    /// Measurements without data allowed in a row; one more pauses the rollout.
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
    /// Failed queries allowed in a row; one more pauses the rollout until the provider
    /// answers again.
    #[serde(default = "default_error_limit")]
    pub error_limit: u32,
    /// Paused this long for an unavailable provider, the rollout rolls back.
    #[serde(default = "default_unavailable_limit")]
    pub unavailable_limit: Duration,
}

fn default_inconclusive_limit() -> u32 {
    // A new version has no series until Prometheus has scraped it twice.
    5
}
fn default_error_limit() -> u32 {
    // Argo Rollouts' consecutiveErrorLimit.
    4
}
fn default_unavailable_limit() -> Duration {
    Duration::from_secs(10 * 60)
}

impl AnalysisMetricConfig {
    /// The checked metric; the config's checks have reported every reason this can
    /// fail, so the engine only sees an error for a config built in code.
    pub fn spec(&self, analysis_interval: Duration) -> Result<MetricSpec, String> {
        let query = QueryTemplate::parse(&self.query)
            .map_err(|e| format!("metric {}: query: {e}", self.name))?;
        let criterion = match (&self.success, self.compare) {
            (Some(text), None) => Criterion::Success(
                SuccessCondition::parse(text)
                    .map_err(|e| format!("metric {}: success: {e}", self.name))?,
            ),
            (None, Some(direction)) => Criterion::Compare(Comparison {
                direction,
                tolerance_pct: self.tolerance_pct,
                tolerance: self.tolerance,
            }),
            _ => {
                return Err(format!(
                    "metric {}: set exactly one of `success` and `compare`",
                    self.name
                ));
            }
        };
        Ok(MetricSpec {
            name: self.name.clone(),
            provider: self.provider.clone(),
            query,
            criterion,
            interval: self.interval.unwrap_or(analysis_interval).get(),
            failure_limit: self.failure_limit,
            inconclusive_limit: self.inconclusive_limit,
            error_limit: self.error_limit,
            unavailable_limit: self.unavailable_limit.get(),
        })
    }
}

const NAME_RULE: &str = "names may use only lowercase letters a-z, digits, `-` and `_`, because they appear in events and metric labels";

pub(crate) fn check(config: &Config, at: &Locator<'_, '_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let providers: Vec<&str> = config
        .metric_providers
        .iter()
        .map(MetricProviderConfig::name)
        .collect();
    for (index, provider) in config.metric_providers.iter().enumerate() {
        let path = format!("metric_provider.{index}");
        let name = provider.name();
        if !rules::is_valid_name(name) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.name")),
                    format!("invalid metric provider name `{name}`"),
                    "only a-z, 0-9, `-` and `_` are allowed",
                )
                .help(NAME_RULE),
            );
        } else if providers[..index].contains(&name) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.name")),
                    format!("duplicate metric provider name `{name}`"),
                    "another [[metric_provider]] above has this name",
                )
                .help("give each provider its own name"),
            );
        }
        let MetricProviderConfig::Prometheus(prometheus) = provider;
        if let Some(problem) = rules::http_url_problem(&prometheus.address) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.address")),
                    format!("invalid Prometheus address `{}`", prometheus.address),
                    problem,
                )
                .help("write the server's base URL, such as \"http://127.0.0.1:9090\""),
            );
        }
        if prometheus.timeout.get() > std::time::Duration::from_secs(60) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.timeout")),
                    format!("`timeout` is too long: {}", prometheus.timeout),
                    "at most 1m",
                )
                .help("a query that takes longer counts as failed; 5s is the default"),
            );
        }
    }
    for (s, service) in config.services.iter().enumerate() {
        let mut names: Vec<&str> = Vec::new();
        for (index, metric) in service.analysis.metrics.iter().enumerate() {
            let path = format!("service.{s}.analysis.metric.{index}");
            metric_checks(&mut findings, at, metric, &path, &providers, &names);
            names.push(&metric.name);
        }
    }
    findings
}

fn metric_checks(
    findings: &mut Vec<Finding>,
    at: &Locator<'_, '_>,
    metric: &AnalysisMetricConfig,
    path: &str,
    providers: &[&str],
    earlier: &[&str],
) {
    if !rules::is_valid_name(&metric.name) {
        findings.push(
            Finding::new(
                at.span(&format!("{path}.name")),
                format!("invalid metric name `{}`", metric.name),
                "only a-z, 0-9, `-` and `_` are allowed",
            )
            .help(NAME_RULE),
        );
    } else if earlier.contains(&metric.name.as_str()) {
        findings.push(
            Finding::new(
                at.span(&format!("{path}.name")),
                format!("duplicate metric name `{}`", metric.name),
                "another metric of this service has this name",
            )
            .help("give each metric of a service its own name"),
        );
    }
    if !providers.contains(&metric.provider.as_str()) {
        let help = match closest(&metric.provider, providers) {
            Some(near) => format!("did you mean `{near}`?"),
            None if providers.is_empty() => "declare it first: [[metric_provider]] name = \"prometheus\", kind = \"prometheus\", address = \"http://127.0.0.1:9090\"".into(),
            None => format!("the metric providers are: {}", providers.join(", ")),
        };
        findings.push(
            Finding::new(
                at.span(&format!("{path}.provider")),
                format!("unknown metric provider `{}`", metric.provider),
                "no [[metric_provider]] has this name",
            )
            .help(help),
        );
    }
    if let Err(error) = QueryTemplate::parse(&metric.query) {
        let span = error
            .span()
            .and_then(|inner| within_string(at, &format!("{path}.query"), &metric.query, inner))
            .unwrap_or_else(|| at.span(&format!("{path}.query")));
        findings.push(
            Finding::new(span, format!("invalid query: {error}"), "in this query").help(
                "write the query about the canary with `{canary}` where its version goes, such as 'sum(rate(http_requests_total{version=\"{canary}\",code=~\"5..\"}[1m])) / sum(rate(http_requests_total{version=\"{canary}\"}[1m]))'",
            ),
        );
    }
    match (&metric.success, metric.compare) {
        (Some(_), Some(_)) => findings.push(
            Finding::new(
                at.span(&format!("{path}.compare")),
                "`success` and `compare` are both set",
                "a metric has one criterion",
            )
            .help("keep `success` for a fixed bound on the canary's value, or `compare` to hold it against stable's"),
        ),
        (None, None) => findings.push(
            Finding::new(
                at.span(path),
                format!("metric `{}` has no criterion", metric.name),
                "set `success` or `compare`",
            )
            .help("such as success = \"result < 0.05\", or compare = \"lower_is_better\" with tolerance_pct = 10"),
        ),
        (Some(text), None) => {
            if let Err(error) = SuccessCondition::parse(text) {
                let span = within_string(at, &format!("{path}.success"), text, error.span.clone())
                    .unwrap_or_else(|| at.span(&format!("{path}.success")));
                findings.push(
                    Finding::new(span, format!("invalid success condition: {error}"), "here")
                        .help("compare `result` (the canary's value) with numbers, joined with `and`/`or`, such as \"result < 0.05\""),
                );
            }
        }
        (None, Some(_)) => {}
    }
    for (key, value) in [
        ("tolerance_pct", metric.tolerance_pct),
        ("tolerance", metric.tolerance),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            findings.push(Finding::new(
                at.span(&format!("{path}.{key}")),
                format!("`{key}` must be a number of 0 or more, not {value}"),
                "out of range",
            ));
        } else if value != 0.0 && metric.compare.is_none() {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.{key}")),
                    format!("`{key}` applies only with `compare`"),
                    "ignored without `compare`",
                )
                .help("remove it, or compare the canary with stable"),
            );
        }
    }
}

/// The place of `inner` (a byte range in the string's value) in the source, when the
/// string is written literally (no escapes), so the error underlines the exact word.
fn within_string(
    at: &Locator<'_, '_>,
    path: &str,
    value: &str,
    inner: std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    let span = at.find(path)?;
    let raw = at.text(&span)?;
    // 'literal' and "basic" strings open with one quote; ''' and """ with three.
    let open = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        3
    } else {
        1
    };
    let body = raw.get(open..raw.len().checked_sub(open)?)?;
    (body == value).then(|| {
        let start = span.start + open + inner.start;
        start..(span.start + open + inner.end).max(start + 1)
    })
}
