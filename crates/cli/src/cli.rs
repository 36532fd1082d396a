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
