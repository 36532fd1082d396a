//! The `rampart` binary: parses the command line and runs one command.

mod cli;
mod client;
mod commands;
mod exit;
mod handover;
mod loadgen;
mod output;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::CliResult;

// mimalloc over glibc's malloc: the router allocates per request (hyper's buffers,
// header maps, tasks) and mimalloc measured ≈ 7 % less user CPU per proxied request
// (docs/BENCHMARKS-router.md). Only binaries choose the allocator, never libraries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    if cli.command.prints_and_exits() {
        restore_default_sigpipe();
    }
    if matches!(cli.command, Command::Serve(_)) {
        // SAFETY: no other thread exists yet (the runtime starts below), so
        // unsetting LISTEN_FDS/LISTEN_PID races with no reader.
        match unsafe { rampart_router::listeners::adopt_from_service_manager() } {
            Ok(addrs) if !addrs.is_empty() => {
                tracing::info!(?addrs, "listening sockets passed by the service manager");
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!(
                    "error: the sockets passed by the service manager are unusable: {e}; check the ListenStream= lines of the .socket unit"
                );
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => commands::serve::run(args).await,
        Command::CheckConfig(args) => commands::check_config::run(args),
        Command::Reload(args) => commands::reload::run(args).await,
        Command::Audit(cmd) => commands::audit::run(cmd).await,
        Command::Token(cmd) => commands::token::run(cmd).await,
        Command::Deploy(args) => commands::rollout::deploy(args).await,
        Command::Status(args) => commands::watch::status(args).await,
        Command::Services(args) => commands::watch::services(args).await,
        Command::Deployments(args) => commands::watch::deployments(args).await,
        Command::Events(args) => commands::watch::events(args).await,
        Command::Promote(args) => commands::rollout::operate("promote", args).await,
        Command::Pause(args) => commands::rollout::operate("pause", args).await,
        Command::Resume(args) => commands::rollout::operate("resume", args).await,
        Command::Abort(args) => commands::rollout::operate("abort", args).await,
        Command::Rollback(args) => commands::history::rollback(args).await,
        Command::Approve(args) => commands::approve::run(args).await,
        Command::History(args) => commands::history::history(args).await,
        Command::Validate(args) => commands::rollout::validate(args).await,
        Command::Traffic(args) => commands::rollout::traffic(args).await,
        Command::Deployment(args) => commands::rollout::deployment(args).await,
        Command::SampleApp(args) => commands::sample_app::run(args).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Load(args) => commands::load::run(args).await,
        Command::Scaling(args) => commands::scaling::show(args).await,
        Command::Scale(args) => commands::scaling::scale(args).await,
        Command::Recommendations(args) => commands::scaling::recommendations(args).await,
        Command::Incidents(args) => commands::incidents::list(args).await,
        Command::Incident(cmd) => commands::incidents::run(cmd).await,
        Command::Notifications(args) => commands::notifications::run(args).await,
        Command::Top(args) => commands::top::run(args).await,
    }
}

/// `rampart audit list | head` should end quietly when `head` has read enough, as
/// other Unix tools do, not panic on the closed pipe. Only for commands that print
/// and exit: long-running ones keep Rust's default of ignoring SIGPIPE.
fn restore_default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called at start-up, before any other thread is spawned, with the
    // default handler (no Rust code runs in it).
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_wanted(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .init();
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything but the
/// empty string (https://no-color.org): logs sent to a file or a pipe stay plain text.
fn colour_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour_wanted;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".into())));
        assert!(!colour_wanted(true, Some("1".into())));
        assert!(!colour_wanted(false, None));
    }
}
