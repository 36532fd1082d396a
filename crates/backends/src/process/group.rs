//! Signalling an instance's whole process group, and waiting for its leader: a child
//! of this rampart, or a process a previous rampart started and this one re-adopted.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;

use super::pidfile;

/// How long to wait for the kernel to deliver SIGKILL before giving up on reaping.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often a re-adopted process (not our child: no exit notification) is looked at.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// An instance's leader process.
pub(crate) enum Leader {
    /// Started by this rampart.
    Child(Child),
    /// Started by a previous rampart and re-adopted: watched through `/proc`.
    Adopted { pid: u32, start_time: u64 },
}

impl Leader {
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Leader::Child(child) => child.id(),
            Leader::Adopted { pid, .. } => Some(*pid),
        }
    }

    /// Completes when the leader has exited; says how, in words.
    pub(crate) async fn wait(&mut self) -> String {
        match self {
            Leader::Child(child) => match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(err) => format!("waiting for it failed: {err}"),
            },
            Leader::Adopted { pid, start_time } => {
                while pidfile::alive(*pid, *start_time) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                "exited (re-adopted process: its exit status went to its former parent)".into()
            }
        }
    }

    /// `Some` once it has exited.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<String>> {
        match self {
            Leader::Child(child) => Ok(child.try_wait()?.map(describe_exit)),
            Leader::Adopted { pid, start_time } => {
                Ok((!pidfile::alive(*pid, *start_time)).then(|| "exited".to_string()))
            }
        }
    }
}

pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// The process group of one launched instance (its id is the leader's pid, thanks to
/// `setsid`). Dropping it while armed kills the group, so a supervisor task that is
/// cancelled (runtime shutdown) leaves no processes behind; instances that outlive
/// rampart are never armed.
pub(crate) struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    pub(crate) fn new(leader_pid: u32, armed: bool) -> Self {
        Self {
            pgid: Pid::from_raw(leader_pid as i32),
            armed,
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            // Already gone: nothing left to signal.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(pgid = %self.pgid, %signal, %err, "cannot signal process group")
            }
        }
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to
    /// whatever is left in the group (stragglers that ignored SIGTERM, or grandchildren
    /// that outlived the leader).
    pub(crate) async fn terminate(mut self, leader: &mut Leader, grace: Duration) {
        self.signal(Signal::SIGTERM);
        let exited = tokio::time::timeout(grace, leader.wait()).await.is_ok();
        self.signal(Signal::SIGKILL);
        if !exited
            && tokio::time::timeout(KILL_WAIT, leader.wait())
                .await
                .is_err()
        {
            tracing::warn!(pgid = %self.pgid, "process did not exit after SIGKILL");
        }
        self.armed = false;
    }

    /// After the leader exited on its own: kills what it left behind in the group.
    pub(crate) fn kill_remaining(mut self) {
        self.signal(Signal::SIGKILL);
        self.armed = false;
    }

    /// Leaves the group running (handed over to the next rampart).
    pub(crate) fn release(mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
    }
}
