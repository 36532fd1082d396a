//! The typed configuration model: what a user writes in `rampart.toml`.
//!
//! Every struct denies unknown keys, so a typo is an error rather than a silently
//! ignored setting. Defaults are the values a production user would pick.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// `[[service]]` tables.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// `[telemetry]`: host and instance metrics, their history and service health.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[[notifier]]` tables: Slack, PagerDuty and webhook receivers.
    #[serde(default, rename = "notifier", skip_serializing_if = "Vec::is_empty")]
    pub notifiers: Vec<NotifierConfig>,
    /// `[[escalation]]` tables: who is told when an incident stays unacknowledged.
    #[serde(default, rename = "escalation", skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationConfig>,
    /// `[[incident_rule]]` tables, on top of the default rules.
    #[serde(
        default,
        rename = "incident_rule",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub incident_rules: Vec<crate::incidents::IncidentRuleConfig>,
    /// `[[incident_action]]` tables: actions with their own settings and guards.
    #[serde(
        default,
        rename = "incident_action",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub incident_actions: Vec<crate::incidents::IncidentActionConfig>,
    /// `[[metric_provider]]` tables: where analysis metrics of the user's own are
    /// queried (Prometheus).
    #[serde(
        default,
        rename = "metric_provider",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub metric_providers: Vec<crate::metric_analysis::MetricProviderConfig>,
}

/// How often host and instance metrics are collected, how long their history is
/// kept, and when a service's users count as failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Between two collections (1s to 1m).
    #[serde(default = "default_telemetry_interval")]
    pub interval: Duration,
    /// How long every collected point is kept.
    #[serde(default = "default_telemetry_retention")]
    pub retention: Duration,
    /// How long 1-minute summaries (mean, min, max) are kept after that.
    #[serde(default = "default_telemetry_downsampled_retention")]
    pub downsampled_retention: Duration,
    /// Percent of a service's requests failing over the last minute above which
    /// `/health` warns about it.
    #[serde(default = "default_warn_error_rate")]
    pub warn_error_rate: f64,
    /// p95 latency a service is expected to keep (the health score's latency part),
    /// unless its `analysis.max_p95_ms` says otherwise.
    #[serde(default = "default_p95_objective")]
    pub p95_objective: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval: default_telemetry_interval(),
            retention: default_telemetry_retention(),
            downsampled_retention: default_telemetry_downsampled_retention(),
            warn_error_rate: default_warn_error_rate(),
            p95_objective: default_p95_objective(),
        }
    }
}

fn default_telemetry_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_telemetry_retention() -> Duration {
    Duration::from_secs(3600)
}

fn default_telemetry_downsampled_retention() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_warn_error_rate() -> f64 {
    5.0
}

fn default_p95_objective() -> Duration {
    Duration::from_millis(500)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// API, dashboard, health and metrics.
    #[serde(default = "default_server_listen")]
    pub listen: SocketAddr,
    /// Where the SQLite store, logs and the admin token live. Relative paths are
    /// resolved against the config file's folder.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// What to do with a rollout that was in flight when rampart stopped.
    #[serde(default)]
    pub on_restart: RestartPolicy,
    /// The API carries bearer tokens in plain HTTP, so it listens only on loopback
    /// unless this says otherwise (for a trusted network, or TLS terminated in
    /// front of rampart). rampart warns at start when it is set.
    #[serde(default)]
    pub insecure_listen: bool,
    /// Where people reach rampart's API (behind a proxy, say); notifications turn
    /// their links into absolute URLs with it. Without it they carry no link.
    pub public_url: Option<String>,
    /// Process-backend instances keep running when rampart exits (on purpose or
    /// not); the next rampart re-adopts them. `false` stops them with rampart.
    #[serde(default = "default_instances_outlive")]
    pub instances_outlive: bool,
    /// `[server.tls]`: the API serves HTTPS only, and may then listen beyond loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// A certificate and its private key, both PEM files, for a listener that terminates
/// TLS. Relative paths are resolved against the config file's folder. Both are read
/// again on SIGHUP, so a renewed certificate is served without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn default_instances_outlive() -> bool {
    true
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_server_listen(),
            data_dir: default_data_dir(),
            on_restart: RestartPolicy::default(),
            insecure_listen: false,
            public_url: None,
            tls: None,
            instances_outlive: true,
        }
    }
}

fn default_server_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("rampart-data")
}

/// After a crash, a rollout in flight is either rolled back (the default: the safe
/// choice when nobody is watching) or resumed at its current step with a fresh
/// analysis window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    #[default]
    Rollback,
    Resume,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// The router's listener: users' traffic enters here.
    pub listen: SocketAddr,
    pub backend: BackendConfig,
    #[serde(default)]
    pub strategy: StrategyConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    #[serde(default)]
    pub router: RouterConfig,
    /// `[[service.check]]` tables: validation run before any traffic moves.
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckConfig>,
    /// Notifiers told of this service's rollouts: started, step advanced, paused,
    /// promoted, rolled back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_rollouts: Vec<String>,
    /// `[service.autoscale]`: instance counts follow the load (process backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleConfig>,
    /// `[[service.hook]]` tables: webhooks at the rollout's points, and load tests.
    #[serde(default, rename = "hook", skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hooks::HookConfig>,
    /// `[service.tls]`: the router serves HTTPS (HTTP/1.1 and h2 by ALPN) on `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendConfig {
    /// rampart starts, health-checks, scales and stops the instances itself.
    Process(ProcessBackendConfig),
    /// Upstreams that already run.
    Static(StaticBackendConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessBackendConfig {
    /// Command template; `{version}`, `{port}`, `{instance}` and `{rampart}` (this
    /// rampart executable) are substituted.
    pub command: String,
    #[serde(default = "default_instances")]
    pub instances: u32,
    #[serde(default = "default_ready_path")]
    pub ready_path: String,
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Duration,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    /// SIGTERM, then SIGKILL after this long.
    #[serde(default = "default_stop_grace")]
    pub stop_grace: Duration,
    /// Each of stdout and stderr is kept to at most this many bytes per instance.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// The version running when rampart first starts this service.
    #[serde(default = "default_initial_version")]
    pub initial_version: String,
}

fn default_instances() -> u32 {
    2
}
fn default_ready_path() -> String {
    "/healthz".into()
}
fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_stop_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_log_max_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_initial_version() -> String {
    "v1".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticBackendConfig {
    /// IP addresses or host names with ports; names are resolved at start and every
    /// `resolve_every`.
    pub stable: Vec<crate::UpstreamAddress>,
    /// Where a deployed version runs when the deploy names no addresses; names are
    /// resolved when the deploy is requested.
    #[serde(default)]
    pub canary: Vec<crate::UpstreamAddress>,
    /// Version label of the stable set, for metrics and status.
    #[serde(default = "default_initial_version")]
    pub stable_version: String,
    /// How often host names in `stable` are resolved again; a changed set is routed
    /// at once.
    #[serde(default = "default_resolve_every")]
    pub resolve_every: Duration,
}

fn default_resolve_every() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    #[serde(default = "default_steps")]
    pub steps: Vec<StepConfig>,
    /// How long the previous version is kept after promotion, so that a rollback in
    /// that window is instant.
    #[serde(default = "default_scale_down_delay")]
    pub scale_down_delay: Duration,
    /// A step whose analysis stays inconclusive this long ends as `on_deadline` says.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Duration,
    #[serde(default)]
    pub on_deadline: DeadlineAction,
    /// Failed analyses in a row before rollback.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,

    // How long each phase that waits on an action may last before the rollout ends it
    // on the safe side (docs/CONTROLLER.md).
    /// Validating: all checks, with their retries.
    #[serde(default = "default_validation_deadline")]
    pub validation_deadline: Duration,
    /// Starting: the new version's instances ready.
    #[serde(default = "default_start_deadline")]
    pub start_deadline: Duration,
    /// Promoting (and an emergency revert): the version at full size and stable.
    #[serde(default = "default_promotion_deadline")]
    pub promotion_deadline: Duration,
    /// RollingBack: the canary stopped (it takes no traffic from the start).
    #[serde(default = "default_rollback_deadline")]
    pub rollback_deadline: Duration,

    // Blue-green (docs/STRATEGIES.md); `steps` are not used by it.
    /// "canary" (the steps, default) or "blue_green".
    #[serde(default)]
    pub kind: StrategyKind,
    /// Blue-green: where the new version is served before the switch (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_listen: Option<SocketAddr>,
    /// Blue-green: instances of the new version before the switch; the backend's
    /// `instances` when absent (Argo's previewReplicaCount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_instances: Option<u32>,
    /// Blue-green: switch without an operator once the preview passed (the default);
    /// false waits for `rampart promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Blue-green: with auto promotion, wait this many seconds after the preview
    /// passed (default 0: switch at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<u32>,
    /// Blue-green: how long the preview's traffic is judged before the switch;
    /// absent, only the validation checks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<Duration>,
    /// Blue-green: how long live traffic is judged after the switch, against the
    /// version before it; a failure switches back. Absent, the switch ends the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    #[default]
    Canary,
    BlueGreen,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            scale_down_delay: default_scale_down_delay(),
            progress_deadline: default_progress_deadline(),
            on_deadline: DeadlineAction::default(),
            failure_limit: default_failure_limit(),
            validation_deadline: default_validation_deadline(),
            start_deadline: default_start_deadline(),
            promotion_deadline: default_promotion_deadline(),
            rollback_deadline: default_rollback_deadline(),
            kind: StrategyKind::default(),
            preview_listen: None,
            preview_instances: None,
            auto_promotion_enabled: None,
            auto_promotion_seconds: None,
            pre_promotion_analysis: None,
            post_promotion_analysis: None,
        }
    }
}

fn default_steps() -> Vec<StepConfig> {
    vec![
        StepConfig::timed(5.0, Duration::from_secs(30)),
        StepConfig::timed(25.0, Duration::from_secs(60)),
        StepConfig::timed(50.0, Duration::from_secs(60)),
    ]
}
fn default_scale_down_delay() -> Duration {
    Duration::from_secs(30)
}
fn default_progress_deadline() -> Duration {
    Duration::from_secs(600)
}
fn default_failure_limit() -> u32 {
    1
}
fn default_validation_deadline() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_start_deadline() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_promotion_deadline() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_rollback_deadline() -> Duration {
    Duration::from_secs(2 * 60)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Percent of traffic to the canary, 0..=100; fractions allowed. May be left out
    /// (0) in a step that matches or mirrors.
    #[serde(default)]
    pub weight: f64,
    /// Required unless `pause` makes the step wait for an operator instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Duration>,
    /// `"until_promoted"`: once the weight is set, wait (no timer) for `rampart
    /// resume` or `rampart promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<StepPause>,
    /// The step is left only after `rampart approve` by a token with this name or role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
    /// Requests with this header or cookie go to the canary, whatever the weight.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub route_match: Option<MatchConfig>,
    /// Percent of stable's requests also sent, as a copy, to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<f64>,
}

impl StepConfig {
    /// A step of `weight` percent with a hold: no gates, no match, no mirroring.
    pub fn timed(weight: f64, hold: Duration) -> Self {
        Self {
            weight,
            hold: Some(hold),
            pause: None,
            approve: None,
            route_match: None,
            mirror: None,
        }
    }

    /// The hold; a gated step without one holds for no time before its gate.
    pub fn hold(&self) -> Duration {
        self.hold.unwrap_or(Duration::from_secs(0))
    }

    /// Whether the step sends the canary traffic besides the weight.
    pub fn steers(&self) -> bool {
        self.route_match.is_some() || self.mirror.is_some()
    }

    /// "5% for 30s", "25% until promoted", "50% for 1m, approved by release-manager".
    pub fn describe(&self) -> String {
        let mut out = match (self.pause, self.hold) {
            (Some(StepPause::UntilPromoted), _) => format!("{}% until promoted", self.weight),
            (None, _) => format!("{}% for {}", self.weight, self.hold()),
        };
        if let Some(name) = &self.approve {
            out.push_str(&format!(", approved by {name}"));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPause {
    UntilPromoted,
}

/// `match = { header = "x-tester", value = "yes" }`: exactly one of `header` and
/// `cookie`; `value` (exact) or `prefix`, or neither for "is present".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl MatchConfig {
    /// Core's form; `None` when neither `header` nor `cookie` is set (the semantic
    /// check reports that with its line).
    pub fn to_core(&self) -> Option<rampart_core::rollout::RequestMatch> {
        use rampart_core::rollout::{MatchSource, RequestMatch, ValueMatch};
        let (source, name) = match (&self.header, &self.cookie) {
            (Some(name), _) => (MatchSource::Header, name.clone()),
            (None, Some(name)) => (MatchSource::Cookie, name.clone()),
            (None, None) => return None,
        };
        let value = match (&self.value, &self.prefix) {
            (Some(text), _) => ValueMatch::Exact(text.clone()),
            (None, Some(text)) => ValueMatch::Prefix(text.clone()),
            (None, None) => ValueMatch::Present,
        };
        Some(RequestMatch {
            source,
            name,
            value,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineAction {
    #[default]
    Fail,
    Pause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeKind {
    #[default]
    Sequential,
    Threshold,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    #[serde(default = "default_interval")]
    pub interval: Duration,
    #[serde(default)]
    pub judge: JudgeKind,
    /// Percent of canary requests; above it the canary fails at once (guardrail).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Percent; the canary fails below it.
    pub min_success_rate: Option<f64>,
    /// Absolute canary latency limits in milliseconds.
    pub max_p95_ms: Option<f64>,
    pub max_p99_ms: Option<f64>,
    /// Percent, canary p95 against stable p95.
    #[serde(default = "default_max_latency_regression")]
    pub max_latency_regression: f64,
    /// Fewer canary requests than this in a window is inconclusive.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Sequential judge: false-rollback probability over the whole rollout.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Sequential judge: percent by which the canary error rate may exceed stable's
    /// before it counts as worse.
    #[serde(default = "default_allowed_error_increase")]
    pub allowed_error_increase: f64,
    /// Sequential judge: percent by which canary latency may exceed stable's.
    #[serde(default = "default_latency_tolerance")]
    pub latency_tolerance: f64,
    /// Sequential judge: milliseconds by which canary latency may always exceed
    /// stable's, however small stable's latency is.
    #[serde(default = "default_latency_tolerance_ms")]
    pub latency_tolerance_ms: f64,
    /// The canary's first seconds of traffic (cold caches, lazy initialisation, new
    /// connections) are served but not judged.
    #[serde(default = "default_warmup")]
    pub warmup: Duration,
    /// Sequential judge: a step passes only once the evidence rules out a
    /// regression beyond the tolerances, not merely when none is seen yet.
    #[serde(default)]
    pub require_confidence: bool,
    /// Sequential judge with `require_confidence`: percentage points of error-rate
    /// increase that count as no regression (so a stable set without errors does
    /// not make confidence impossible).
    #[serde(default = "default_error_rate_margin")]
    pub error_rate_margin: f64,
    /// `[[service.analysis.metric]]`: queries to a metric provider judged beside the
    /// router's own measurements.
    #[serde(default, rename = "metric", skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<crate::metric_analysis::AnalysisMetricConfig>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            judge: JudgeKind::default(),
            max_error_rate: default_max_error_rate(),
            min_success_rate: None,
            max_p95_ms: None,
            max_p99_ms: None,
            max_latency_regression: default_max_latency_regression(),
            min_requests: default_min_requests(),
            alpha: default_alpha(),
            allowed_error_increase: default_allowed_error_increase(),
            latency_tolerance: default_latency_tolerance(),
            latency_tolerance_ms: default_latency_tolerance_ms(),
            warmup: default_warmup(),
            require_confidence: false,
            error_rate_margin: default_error_rate_margin(),
            metrics: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_error_rate() -> f64 {
    5.0
}
fn default_max_latency_regression() -> f64 {
    20.0
}
fn default_min_requests() -> u64 {
    50
}
fn default_alpha() -> f64 {
    0.01
}
fn default_allowed_error_increase() -> f64 {
    10.0
}
fn default_latency_tolerance_ms() -> f64 {
    1.0
}
fn default_latency_tolerance() -> f64 {
    10.0
}
fn default_warmup() -> Duration {
    // Enough for a native service's first connections and caches; a JIT runtime
    // wants more (its users set it).
    Duration::from_secs(5)
}
fn default_error_rate_margin() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Header with which a client picks its set (`canary` or `stable`). Off unless
    /// named here; such requests are counted apart and never judged.
    pub version_header: Option<String>,
    /// Source networks whose requests may use `version_header` (CIDR, such as
    /// "10.0.0.0/8"); required with it. From anywhere else the header is ignored and
    /// the split decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_header_from: Vec<ipnet::IpNet>,
    /// Cookie that keeps a client on the set it first got; `None` turns stickiness off.
    pub sticky_cookie: Option<String>,
    /// In-flight requests above this get 503 with `Retry-After`; `None` is unlimited.
    pub max_concurrency: Option<u32>,
    /// Consecutive 5xx or connect failures before an instance is ejected; 0 disables.
    #[serde(default = "default_outlier_failures")]
    pub outlier_consecutive_failures: u32,
    #[serde(default = "default_outlier_base_ejection")]
    pub outlier_base_ejection: Duration,
    /// How long a removed instance may finish in-flight requests.
    #[serde(default = "default_drain_grace")]
    pub drain_grace: Duration,
    /// A client must send a whole request head within this, counted from connecting,
    /// or on a kept-alive connection from the first byte of the next request. Cuts
    /// slowloris clients.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight and no bytes moving for this
    /// long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// A request body that delivers nothing for this long is abandoned (408), and not
    /// charged to any version.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u32,
    /// Most header fields in one request; more gets 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: u32,
    /// Open connections from one client IP address; more are closed at once.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: u32,

    // Mirror steps (docs/STRATEGIES.md): copies of stable's requests sent to the canary.
    /// Also mirror POST, PATCH and other non-idempotent requests (the canary then
    /// repeats their side effects).
    #[serde(default)]
    pub mirror_non_idempotent: bool,
    /// Requests with a larger body are not mirrored (the copy's body is kept in memory).
    #[serde(default = "default_mirror_max_body_bytes")]
    pub mirror_max_body_bytes: u64,
    /// Mirrored copies in flight at once; more are dropped (never delayed).
    #[serde(default = "default_mirror_max_in_flight")]
    pub mirror_max_in_flight: u32,
}

fn default_mirror_max_body_bytes() -> u64 {
    64 * 1024
}
fn default_mirror_max_in_flight() -> u32 {
    256
}

/// Upper bounds of the router's timeouts, so that a typo ("10h" for "10s") cannot
/// leave slow clients holding connections for ever.
pub const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
pub const MAX_BODY_READ_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            version_header: None,
            version_header_from: Vec::new(),
            sticky_cookie: None,
            max_concurrency: None,
            outlier_consecutive_failures: default_outlier_failures(),
            outlier_base_ejection: default_outlier_base_ejection(),
            drain_grace: default_drain_grace(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            body_read_timeout: default_body_read_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_connections_per_client: default_max_connections_per_client(),
            mirror_non_idempotent: false,
            mirror_max_body_bytes: default_mirror_max_body_bytes(),
            mirror_max_in_flight: default_mirror_max_in_flight(),
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_outlier_failures() -> u32 {
    5
}
fn default_outlier_base_ejection() -> Duration {
    Duration::from_secs(30)
}
fn default_drain_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_header_bytes() -> u32 {
    64 * 1024
}
fn default_max_headers() -> u32 {
    100
}
fn default_max_connections_per_client() -> u32 {
    1024
}

/// One `[[service.check]]` table. The common keys and the kind's own keys sit side by
/// side in the TOML; reading goes through a flat representation (see `check_serde`)
/// because serde cannot combine `flatten` with `deny_unknown_fields`, and unknown keys
/// must stay errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "crate::check_serde::RawCheck")]
pub struct CheckConfig {
    pub name: String,
    #[serde(flatten)]
    pub kind: CheckKind,
    pub timeout: Duration,
    /// Extra attempts after the first failure, with exponential backoff.
    pub retries: u32,
    pub retry_backoff: Duration,
    /// A failed critical check stops the deployment; a failed non-critical one is a
    /// warning.
    pub critical: bool,
}

pub(crate) fn default_check_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn default_retry_backoff() -> Duration {
    Duration::from_secs(1)
}
pub(crate) fn default_critical() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckKind {
    /// Runs through `sh -c`; passes on exit code 0.
    Command {
        command: String,
        working_dir: Option<PathBuf>,
    },
    Http {
        url: String,
        #[serde(default = "default_http_method")]
        method: String,
        #[serde(default = "default_expect_status")]
        expect_status: u16,
        /// The body must contain this text.
        body_contains: Option<String>,
    },
    Tcp {
        address: String,
    },
    /// A PromQL query whose result must satisfy the comparison (Prometheus issue).
    Prometheus {
        url: String,
        query: String,
        /// e.g. "< 0.01"
        expect: String,
    },
}

pub(crate) fn default_http_method() -> String {
    "GET".into()
}
pub(crate) fn default_expect_status() -> u16 {
    200
}

impl Config {
    /// The service called `name`, if the config has one.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|service| service.name == name)
    }
}

impl BackendConfig {
    /// The `kind` value as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Process(_) => "process",
            Self::Static(_) => "static",
        }
    }
}

impl CheckKind {
    /// The `kind` value as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Command { .. } => "command",
            Self::Http { .. } => "http",
            Self::Tcp { .. } => "tcp",
            Self::Prometheus { .. } => "prometheus",
        }
    }
}

/// `[service.autoscale]`: the Kubernetes HPA's algorithm and defaults, per version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleConfig {
    #[serde(default = "default_autoscale_min")]
    pub min: u32,
    pub max: u32,
    /// Each asks for ceil(current × observed / value) instances; the largest wins.
    pub targets: Vec<AutoscaleTarget>,
    /// Between two decisions (default 15s, the HPA's).
    #[serde(default = "default_autoscale_sync")]
    pub sync: Duration,
    /// A scale-down waits until every recommendation this long back agrees (default 5m).
    #[serde(default = "default_scale_down_stabilization")]
    pub scale_down_stabilization: Duration,
    /// A scale-up waits until every recommendation this long back agrees (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_stabilization: Option<Duration>,
    /// Default: 4 instances or 100 % per 15s, whichever is more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRulesConfig>,
    /// Default: 100 % per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRulesConfig>,
    #[serde(default)]
    pub mode: AutoscaleMode,
    /// Predictive: how far ahead instances are started (covers start-up; default 2m).
    #[serde(default = "default_lead_time")]
    pub lead_time: Duration,
    /// What one instance costs per hour, in any currency; decisions report cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_instance_hour: Option<f64>,
    /// A budget: a limit like `max` (needs `cost_per_instance_hour`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_hour: Option<f64>,
}

fn default_autoscale_min() -> u32 {
    1
}
fn default_autoscale_sync() -> Duration {
    Duration::from_secs(15)
}
fn default_scale_down_stabilization() -> Duration {
    Duration::from_secs(300)
}
fn default_lead_time() -> Duration {
    Duration::from_secs(120)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleTarget {
    pub metric: AutoscaleMetric,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoscaleMetric {
    /// Percent of one core per instance, averaged over ready instances.
    Cpu,
    /// Resident memory per instance in MiB, averaged.
    MemoryMib,
    /// The version's requests per second divided by its instances.
    RpsPerInstance,
    /// The version's p95 latency in milliseconds.
    P95Ms,
}

impl AutoscaleMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoscaleMetric::Cpu => "cpu",
            AutoscaleMetric::MemoryMib => "memory_mib",
            AutoscaleMetric::RpsPerInstance => "rps_per_instance",
            AutoscaleMetric::P95Ms => "p95_ms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoscaleMode {
    #[default]
    Reactive,
    Predictive,
    ForecastOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRulesConfig {
    #[serde(default)]
    pub policies: Vec<ScalingPolicyConfig>,
    #[serde(default)]
    pub select: PolicySelect,
}

/// `{ instances = 4, period = "15s" }` or `{ percent = 100, period = "15s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySelect {
    #[default]
    Max,
    Min,
    Disabled,
}

// ---------------------------------------------------------------------------------
// Notifications and escalation.

/// One `[[notifier]]`: a receiver of notifications, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifierConfig {
    /// A Slack incoming webhook (Block Kit message).
    Slack(SlackNotifierConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutyNotifierConfig),
    /// A JSON POST of the message, signed with HMAC-SHA256.
    Webhook(WebhookNotifierConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackNotifierConfig {
    pub name: String,
    /// The incoming webhook's URL.
    pub url: String,
    #[serde(default = "default_notifier_timeout")]
    pub timeout: Duration,
    /// Messages a second; Slack allows about one per webhook.
    pub rate_limit: Option<f64>,
    /// How long a message that keeps failing with 429, 5xx or timeouts is retried.
    #[serde(default = "default_notifier_retry_for")]
    pub retry_for: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyNotifierConfig {
    pub name: String,
    /// The Events API v2 integration key of a PagerDuty service.
    pub routing_key: String,
    /// Overridable for proxies and tests.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    #[serde(default = "default_notifier_timeout")]
    pub timeout: Duration,
    /// Events a second; PagerDuty allows about 120 a minute per key.
    pub rate_limit: Option<f64>,
    #[serde(default = "default_notifier_retry_for")]
    pub retry_for: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookNotifierConfig {
    pub name: String,
    pub url: String,
    /// Signs each body with HMAC-SHA256 (`X-Rampart-Signature`), see
    /// docs/NOTIFICATIONS.md. Without it requests are unsigned.
    pub secret: Option<String>,
    #[serde(default = "default_notifier_timeout")]
    pub timeout: Duration,
    pub rate_limit: Option<f64>,
    #[serde(default = "default_notifier_retry_for")]
    pub retry_for: Duration,
}

/// The settings every notifier kind has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliverySettings {
    pub timeout: Duration,
    pub rate_limit: Option<f64>,
    pub retry_for: Duration,
}

pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn default_pagerduty_url() -> String {
    DEFAULT_PAGERDUTY_URL.into()
}
fn default_notifier_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_notifier_retry_for() -> Duration {
    Duration::from_secs(6 * 3600)
}

impl NotifierConfig {
    pub fn name(&self) -> &str {
        match self {
            Self::Slack(c) => &c.name,
            Self::Pagerduty(c) => &c.name,
            Self::Webhook(c) => &c.name,
        }
    }

    /// The `kind` value as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Slack(_) => "slack",
            Self::Pagerduty(_) => "pagerduty",
            Self::Webhook(_) => "webhook",
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            Self::Slack(c) => Some(&c.url),
            Self::Pagerduty(c) => Some(&c.url),
            Self::Webhook(c) => Some(&c.url),
        }
    }

    pub fn delivery(&self) -> DeliverySettings {
        let (timeout, rate_limit, retry_for) = match self {
            Self::Slack(c) => (c.timeout, c.rate_limit, c.retry_for),
            Self::Pagerduty(c) => (c.timeout, c.rate_limit, c.retry_for),
            Self::Webhook(c) => (c.timeout, c.rate_limit, c.retry_for),
        };
        DeliverySettings {
            timeout,
            rate_limit,
            retry_for,
        }
    }

    /// Messages a second when `rate_limit` is not set: what the receiver allows.
    pub fn default_rate_limit(&self) -> f64 {
        match self {
            Self::Slack(_) => 1.0,
            Self::Pagerduty(_) => 2.0,
            Self::Webhook(_) => 10.0,
        }
    }

    /// The rate the delivery worker keeps to, in messages a second.
    pub fn rate_limit(&self) -> f64 {
        self.delivery()
            .rate_limit
            .unwrap_or_else(|| self.default_rate_limit())
    }
}

/// One `[[escalation]]` policy: while an incident stays unacknowledged, each step
/// notifies its notifiers once its `after` has passed since the incident opened;
/// with `repeat`, the steps run again (counting from the last step) that many times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    pub name: String,
    pub steps: Vec<EscalationStepConfig>,
    #[serde(default)]
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStepConfig {
    /// Since the incident opened (in the first round).
    pub after: Duration,
    pub notify: Vec<String>,
}

impl Config {
    /// The notifier called `name`, if the config has one.
    pub fn notifier(&self, name: &str) -> Option<&NotifierConfig> {
        self.notifiers.iter().find(|n| n.name() == name)
    }

    /// The escalation policy called `name`, if the config has one.
    pub fn escalation(&self, name: &str) -> Option<&EscalationConfig> {
        self.escalations.iter().find(|e| e.name == name)
    }
}

impl EscalationConfig {
    /// The policy as the pure escalation logic takes it
    /// ([`rampart_core::escalation::next_escalation`]).
    pub fn policy(&self) -> rampart_core::escalation::EscalationPolicy {
        rampart_core::escalation::EscalationPolicy {
            name: self.name.clone(),
            steps: self
                .steps
                .iter()
                .map(|step| rampart_core::escalation::EscalationStep {
                    after: step.after.get(),
                    notify: step.notify.clone(),
                })
                .collect(),
            repeat: self.repeat,
        }
    }
}
