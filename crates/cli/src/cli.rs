//! The command line, as clap derives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Ship a new version of a service without downtime and keep it healthy afterwards.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, dashboard, routers and controllers.
    Serve(ServeArgs),
    /// Validate a configuration file without starting anything.
    CheckConfig(ConfigArg),
    /// Make the running server re-read its config file and apply what changed
    /// (as SIGHUP does); prints the changes, or why nothing changed. Admin token.
    Reload(ApiOnlyArgs),
    /// Read or verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Roll out a new version of a service.
    // Its `--version V` names the version to deploy, so the automatic flag is off.
    #[command(disable_version_flag = true)]
    Deploy(DeployArgs),
    /// Where a service stands: stable version, rollout in flight, live numbers.
    Status(StatusArgs),
    /// List the services with their stable and canary versions and any rollout in flight.
    Services(ApiOnlyArgs),
    /// List deployments, newest first: of one service, or of all.
    Deployments(DeploymentsArgs),
    /// Print rampart's live events (rollout transitions, verdicts, traffic) as they happen.
    Events(EventsArgs),
    /// Skip the remaining steps and promote the canary (blue-green: switch to the preview).
    Promote(OperateArgs),
    /// Hold the rollout at its current step.
    Pause(OperateArgs),
    /// Resume a paused rollout.
    Resume(OperateArgs),
    /// Roll the canary back and end the rollout as aborted.
    Abort(OperateArgs),
    /// Emergency rollback: during a rollout, or after a promotion back to the previous
    /// version; with --to, a rollout back to an earlier revision.
    Rollback(RollbackArgs),
    // Gates (issue 15).
    /// Approve a rollout step that needs a named approval (`approve = NAME` in the step).
    Approve(ApproveArgs),
    /// The versions a service ran: revision, version, when, who, outcome.
    History(ServiceArgs),
    /// Run a service's validation checks without deploying.
    Validate(ServiceArgs),
    /// Show or set a service's traffic split by hand.
    Traffic(TrafficArgs),
    /// Show one deployment in full (steps, measurements, events).
    Deployment(DeploymentArgs),
    /// Run the sample service used by tests, benchmarks and the demo.
    // Its `--version V` names the version it reports, so the automatic flag is off.
    #[command(disable_version_flag = true)]
    SampleApp(rampart_sample_app::SampleAppArgs),
    /// Watch rampart promote a healthy release and roll back a bad one, on this machine.
    Demo(DemoArgs),
    /// Send steady HTTP traffic to a URL; show rate, errors and latency per version.
    Load(LoadArgs),
    /// Notifications sent to Slack, PagerDuty and webhooks, with their delivery status.
    Notifications(NotificationsArgs),
    // Autoscaling (issue 14).
    /// A service's size, limits and recent scaling decisions with their reasons.
    Scaling(ScalingArgs),
    /// Set a service's stable size by hand; with autoscaling on, as `min` for a while.
    Scale(ScaleArgs),
    /// What the last 24 h suggest (min too high or low, flapping, restarting instances).
    Recommendations(ApiOnlyArgs),
    /// List incidents, newest first.
    Incidents(IncidentsArgs),
    /// Show, acknowledge, escalate or resolve one incident.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// A live view of the host, services, versions and instances (from the telemetry API).
    Top(TopArgs),
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Between two refreshes.
    #[arg(long, value_name = "DURATION", default_value = "2s",
          value_parser = rampart_config::duration::parse_positive)]
    pub interval: rampart_config::Duration,
    /// Print one frame and exit (also when stdout is not a terminal).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ScalingArgs {
    /// The service to show.
    pub service: String,
    /// How many recent decisions to list.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// open, acknowledged, resolved or unresolved.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only incidents of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// critical, high, medium or low.
    #[arg(long)]
    pub severity: Option<String>,
    /// At most this many.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The service to scale.
    pub service: String,
    /// The stable version's instance count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub instances: u32,
    /// With autoscaling on: how long N holds as the minimum, such as 30m or 2h (default 30m).
    #[arg(long = "for", value_name = "DURATION", value_parser = rampart_config::duration::parse_positive)]
    pub hold: Option<rampart_config::Duration>,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct IncidentIdArgs {
    /// The incident's id (from `rampart incidents`).
    pub id: String,
    /// Why; recorded on the incident's timeline and in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ApiOnlyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// The incident with its timeline (changes, actions, notifications).
    Show(IncidentIdArgs),
    /// Someone is on it: escalation stops.
    Ack(IncidentIdArgs),
    /// Escalate now.
    Escalate(IncidentIdArgs),
    /// Resolve by hand; its actions are undone where that makes sense.
    Resolve(IncidentIdArgs),
}

impl Command {
    /// Commands that print a result and exit, as opposed to those that serve or run
    /// until stopped.
    pub fn prints_and_exits(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_)
                | Command::Demo(_)
                | Command::SampleApp(_)
                | Command::Load(_)
                | Command::Top(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Where to send requests, such as a service's router: http://127.0.0.1:8080/
    pub url: String,
    /// Requests per second.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// How long to send, such as 30s or 5m (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = rampart_config::duration::parse_positive)]
    pub duration: Option<rampart_config::Duration>,
    /// Response header that names the version that answered (the sample app sets it).
    #[arg(long, value_name = "NAME", default_value = rampart_sample_app::VERSION_HEADER)]
    pub version_header: String,
    /// Count a request as failed when it has no answer after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s",
          value_parser = rampart_config::duration::parse_positive)]
    pub timeout: rampart_config::Duration,
    /// PEM file of a CA to trust for an https URL (a private CA, a self-signed
    /// certificate), besides the public ones.
    #[arg(long, value_name = "FILE", env = "RAMPART_CA")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service's name, as in the config's [[service]] `name`.
    pub service: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct OperateArgs {
    /// The service whose rollout to act on.
    pub service: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    /// Promote, abort and rollback: return at once instead of waiting for the final state.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// Roll out an earlier revision again, through the steps and the judge: a
    /// revision number or a version from `rampart history` (its addresses and
    /// per-deploy environment are re-used).
    #[arg(long, value_name = "VERSION|REVISION")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The service whose rollout to approve.
    pub service: String,
    /// The step to approve, counted from 1; default: the step the rollout is at. A
    /// later step may be approved ahead of time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub step: Option<u32>,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The service to deploy to.
    pub service: String,
    /// The version to roll out.
    #[arg(long = "version", value_name = "V")]
    pub version: String,
    /// Static backend: where the new version runs, IP:PORT or HOST:PORT (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub canary: Vec<rampart_config::UpstreamAddress>,
    /// Process backend: extra environment for the new version (KEY=VALUE, repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    /// Follow the rollout; exit 0 when promoted, 1 when rolled back or failed.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct TrafficArgs {
    /// The service whose traffic to show or set.
    pub service: String,
    /// Set the canary's share of traffic in percent (0 to 100).
    #[arg(long, value_name = "PERCENT")]
    pub weight: Option<f64>,
    /// Replace the canary set with these upstreams, IP:PORT or HOST:PORT (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub canary: Vec<rampart_config::UpstreamAddress>,
    /// Limit requests in flight (excess gets 503 with Retry-After); 0 lifts the limit.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// Eject instances after consecutive failures: true or false.
    #[arg(long, value_name = "BOOL")]
    pub outlier_detection: Option<bool>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The service's name, as in the config's [[service]] `name`.
    pub service: String,
    /// Follow the rollout in flight to its end, as `deploy --wait` does; exit 0 if it
    /// is promoted, 1 otherwise (no rollout in flight: print the status and exit 0).
    #[arg(long, short = 'w')]
    pub watch: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    /// Only this service's deployments.
    pub service: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this service's events.
    pub service: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// The deployment's id (from `deploy`, `status` or the API).
    pub id: String,
    /// Print the per-second samples the judge saw, as JSON lines (the format
    /// `rampart-judge-bench --replay FILE` reads), instead of the summary.
    #[arg(long, conflicts_with = "measurements")]
    pub samples: bool,
    /// Also list every analysis measurement (JSON: the full list, paged from the API).
    #[arg(long)]
    pub measurements: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// End after the scenario: exit 0 if v2 was promoted and v3 rolled back.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Requests per second of the built-in load generator.
    #[arg(long, default_value_t = 200)]
    pub rps: u32,
    /// Address of the API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub api_listen: std::net::SocketAddr,
    /// Address of the demo service's router (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub service_listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (TOML); see examples/ and docs/.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Take over from the rampart serving from the same data dir without dropping a
    /// connection: its listening sockets, data-dir lock, instances and rollouts in
    /// flight; it then drains and exits (docs/OPERATIONS.md). SIGUSR2 to the running
    /// rampart does the same.
    #[arg(long)]
    pub upgrade: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file (TOML) to check.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    #[default]
    Table,
    /// JSON, as the API answers.
    Json,
}

/// Where a command finds rampart: the data dir directly (offline), or the API.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Work on this config's data dir directly instead of through the API.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// Work on this data dir directly instead of through the API.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The rampart API to talk to.
    #[arg(
        long,
        value_name = "URL",
        env = "RAMPART_API",
        default_value = "http://127.0.0.1:7070"
    )]
    pub api: String,
    /// Bearer token; defaults to $RAMPART_TOKEN, then ./rampart-data/admin.token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RAMPART_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// PEM file of a CA to trust for an https --api (a private CA, a self-signed
    /// certificate), besides the public ones.
    #[arg(long, value_name = "FILE", env = "RAMPART_CA")]
    pub ca: Option<PathBuf>,
    /// How to print the result.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries.
    List {
        #[command(flatten)]
        target: Target,
        /// Only entries after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// At most this many entries.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
        /// Only entries about this subject, such as service/web.
        #[arg(long)]
        subject: Option<String>,
        /// Only entries of this action, such as traffic.set.
        #[arg(long)]
        action: Option<String>,
    },
    /// Recompute the hash chain; exits 1 and names the first bad entry if it was tampered with.
    Verify {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret once.
    Create {
        #[command(flatten)]
        target: Target,
        /// A name for the token, unique, shown in the audit log.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token by name or id.
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The token's name or id.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag and argument of every command explains itself in `--help`.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && !arg.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "rampart", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Only these: pending, delivered, skipped, failed or abandoned.
    #[arg(long)]
    pub state: Option<String>,
    /// Only those for this [[notifier]].
    #[arg(long)]
    pub notifier: Option<String>,
    /// Only those about one thing: incident-<id> or rollout-<deployment id>.
    #[arg(long)]
    pub key: Option<String>,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
}
