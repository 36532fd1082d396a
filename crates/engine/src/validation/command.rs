//! A command check: `sh -c` in its own process group, passing on exit code 0.
//!
//! Nothing a check starts outlives it: when the shell exits or the timeout fires, the
//! whole process group is killed, so background children neither leak nor hold the
//! output pipe open.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rampart_config::Duration as ConfigDuration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::time::{Instant, sleep_until};

use super::attempt::Attempt;
use super::tail::{OUTPUT_LIMIT, Tail};

/// After the shell has exited, how long to wait for the rest of its output; only a
/// process that left the group (`setsid`) can hold the pipe open that long.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_millis(500);

pub(crate) async fn run(command: &str, working_dir: &Path, timeout: ConfigDuration) -> Attempt {
    if !tokio::fs::metadata(working_dir)
        .await
        .is_ok_and(|meta| meta.is_dir())
    {
        return Attempt::misconfigured(format!(
            "working directory {} does not exist",
            working_dir.display()
        ));
    }
    match spawn(command, working_dir) {
        Ok((child, output)) => supervise(child, output, timeout).await,
        Err(err) => Attempt::fail(format!("could not start `sh -c`: {err}")),
    }
}

/// Starts the shell with stdout and stderr on one pipe, so the output keeps the order
/// in which it was written.
fn spawn(
    command: &str,
    working_dir: &Path,
) -> std::io::Result<(tokio::process::Child, pipe::Receiver)> {
    let (writer, reader) = pipe::pipe()?;
    let stdout = writer.into_blocking_fd()?;
    let stderr = stdout.try_clone()?;
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(command)
        .current_dir(working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true);
    let child = shell.spawn();
    // Our copies of the pipe's write end live in `shell`; they must be closed, or the
    // output would never reach its end.
    drop(shell);
    Ok((child?, reader))
}

enum Ending {
    Exited(ExitStatus),
    TimedOut,
    WaitFailed(std::io::Error),
}

async fn supervise(
    mut child: tokio::process::Child,
    mut output: pipe::Receiver,
    timeout: ConfigDuration,
) -> Attempt {
    // With `process_group(0)` the shell leads a group whose id is its pid.
    let mut group = GroupGuard {
        group: child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw),
    };
    let deadline = Instant::now() + timeout.get();
    let mut tail = Tail::new(OUTPUT_LIMIT);
    let mut buffer = [0u8; 8192];
    let mut output_done = false;
    let mut ending: Option<Ending> = None;
    let mut drain_deadline = deadline;
    loop {
        tokio::select! {
            read = output.read(&mut buffer), if !output_done => match read {
                Ok(0) | Err(_) => output_done = true,
                Ok(n) => tail.push(&buffer[..n]),
            },
            status = child.wait(), if ending.is_none() => {
                group.kill();
                ending = Some(match status {
                    Ok(status) => Ending::Exited(status),
                    Err(err) => Ending::WaitFailed(err),
                });
                drain_deadline = Instant::now() + OUTPUT_DRAIN_GRACE;
            },
            () = sleep_until(deadline), if ending.is_none() => {
                group.kill();
                // SIGKILL cannot be ignored, so reaping is prompt; the direct kill
                // covers a shell whose group could not be signalled.
                let _ = child.start_kill();
                let _ = child.wait().await;
                ending = Some(Ending::TimedOut);
                drain_deadline = Instant::now() + OUTPUT_DRAIN_GRACE;
            },
            () = sleep_until(drain_deadline), if ending.is_some() => break,
        }
        if output_done && ending.is_some() {
            break;
        }
    }
    let attempt = match ending {
        Some(Ending::Exited(status)) if status.success() => Attempt::pass("exit code 0"),
        Some(Ending::Exited(status)) => Attempt::fail(describe_failure(status)),
        Some(Ending::TimedOut) => Attempt::timed_out(timeout),
        Some(Ending::WaitFailed(err)) => {
            Attempt::fail(format!("could not wait for the command: {err}"))
        }
        // The loop only ends once the command has; kept total rather than panicking.
        None => Attempt::fail("the command's end was not observed"),
    };
    attempt.with_output(tail.into_text())
}

fn describe_failure(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => format!("ended without an exit code ({status})"),
    }
}

/// The check's process group, killed at the latest when this is dropped: a check
/// abandoned mid-run (its future dropped on abort) leaves nothing running either.
struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    /// Kills what is left of the group, once; an empty group is fine.
    fn kill(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        if let Err(err) = killpg(group, Signal::SIGKILL)
            && err != nix::errno::Errno::ESRCH
        {
            tracing::warn!(%group, "could not kill a check's process group: {err}");
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
