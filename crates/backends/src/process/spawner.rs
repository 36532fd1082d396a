//! Launches instance processes from one dedicated, long-lived thread.
//!
//! Each child gets its own session and process group (`setsid`), so a stop signal
//! reaches its grandchildren too, and `PR_SET_PDEATHSIG = SIGKILL`, so it dies if
//! rampart dies without cleaning up. Linux fires the parent-death signal when the
//! *thread* that forked the child exits, not the process: Tokio's blocking-pool
//! threads exit after being idle, and a worker thread can be retired by
//! `block_in_place`, so spawning from either would kill healthy instances at random.
//! This thread lives exactly as long as the backend that owns it.

use std::io;
use std::sync::mpsc;

use nix::sys::signal::Signal;
use nix::unistd::{Pid, getppid, setsid};
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

struct SpawnRequest {
    command: Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

pub(crate) struct Spawner {
    requests: mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    /// Starts the spawning thread; children are registered with `runtime` for reaping.
    pub(crate) fn start(runtime: Handle, name: &str) -> io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name(format!("spawner-{name}"))
            .spawn(move || {
                // Tokio's child reaping needs the runtime context on the forking thread.
                let _runtime = runtime.enter();
                // Ends when the backend (the only sender) is dropped.
                while let Ok(mut request) = incoming.recv() {
                    let spawned = request.command.spawn();
                    let _ = request.reply.send(spawned);
                }
            })?;
        Ok(Self { requests })
    }

    /// `die_with_rampart`: the parent-death signal is set (instances that do not
    /// outlive rampart); otherwise the child only gets its own session.
    pub(crate) async fn spawn(
        &self,
        mut command: Command,
        die_with_rampart: bool,
    ) -> io::Result<Child> {
        let rampart = Pid::this();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (setsid, prctl, getppid); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                setsid()?;
                if !die_with_rampart {
                    return Ok(());
                }
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // rampart may have died between fork and prctl; then no signal comes.
                if getppid() != rampart {
                    return Err(io::Error::other("rampart exited during spawn"));
                }
                Ok(())
            });
        }
        let (reply, response) = oneshot::channel();
        self.requests
            .send(SpawnRequest { command, reply })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        response
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}
