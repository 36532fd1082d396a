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
    Status(ServiceArgs),
    /// Skip the remaining steps and promote the canary.
    Promote(OperateArgs),
    /// Hold the rollout at its current step.
    Pause(OperateArgs),
    /// Resume a paused rollout.
    Resume(OperateArgs),
    /// Roll the canary back and end the rollout as aborted.
    Abort(OperateArgs),
    /// Emergency rollback: during a rollout, or after a promotion back to the previous version.
    Rollback(OperateArgs),
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
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    pub service: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct OperateArgs {
    pub service: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    pub service: String,
    /// The version to roll out.
    #[arg(long = "version", value_name = "V")]
    pub version: String,
    /// Static backend: where the new version runs (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub canary: Vec<std::net::SocketAddr>,
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
    pub service: String,
    /// Set the canary's share of traffic in percent (0 to 100).
    #[arg(long, value_name = "PERCENT")]
    pub weight: Option<f64>,
    /// Replace the canary set with these upstreams (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub canary: Vec<std::net::SocketAddr>,
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
pub struct DeploymentArgs {
    /// The deployment's id (from `deploy`, `status` or the API).
    pub id: String,
    /// Print the per-second samples the judge saw, as JSON lines (the format
    /// `rampart-judge-bench --replay FILE` reads), instead of the summary.
    #[arg(long)]
    pub samples: bool,
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
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
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
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        subject: Option<String>,
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
        name: String,
    },
}
