//! Signalling an instance's whole process group.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;

/// How long to wait for the kernel to deliver SIGKILL before giving up on reaping.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The process group of one launched instance (its id is the leader's pid, thanks to
/// `setsid`). Dropping it while armed kills the group, so a supervisor task that is
/// cancelled (runtime shutdown) leaves no processes behind.
pub(crate) struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    pub(crate) fn new(leader_pid: u32) -> Self {
        Self {
            pgid: Pid::from_raw(leader_pid as i32),
            armed: true,
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
    pub(crate) async fn terminate(mut self, child: &mut Child, grace: Duration) {
        self.signal(Signal::SIGTERM);
        let exited = tokio::time::timeout(grace, child.wait()).await.is_ok();
        self.signal(Signal::SIGKILL);
        if !exited && tokio::time::timeout(KILL_WAIT, child.wait()).await.is_err() {
            tracing::warn!(pgid = %self.pgid, "process did not exit after SIGKILL");
        }
        self.armed = false;
    }

    /// After the leader exited on its own: kills what it left behind in the group.
    pub(crate) fn kill_remaining(mut self) {
        self.signal(Signal::SIGKILL);
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
