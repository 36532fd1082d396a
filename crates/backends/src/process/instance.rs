//! One instance's life: launch, wait until ready, watch it, restart it on the same
//! address after a crash (with exponential backoff), and stop it with its whole
//! process group.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::command::{self, InstancePaths};
use super::group::{Leader, ProcessGroup};
use super::{Shared, lock, logs, pidfile, ready};
use crate::{BackendError, BackendEventKind, Instance, InstanceRecord, InstanceState};

/// Pause between ready probes.
const READY_POLL: Duration = Duration::from_millis(100);
/// Restart backoff: 1s, 2s, 4s, ... up to 30s.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An instance that stayed up this long starts over at the shortest backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long to let log readers drain after the processes are gone.
const LOG_DRAIN: Duration = Duration::from_secs(1);

pub(crate) fn instance_id(version: &str, index: u32) -> String {
    format!("{version}-{index}")
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_BASE
        .checked_mul(1u32 << failures.min(16))
        .map_or(BACKOFF_MAX, |delay| delay.min(BACKOFF_MAX))
}

/// What the backend asks of an instance's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    Run,
    /// Stop the processes, then end.
    Stop,
    /// End without stopping anything: the processes outlive this rampart.
    Detach,
}

/// The backend's grip on a supervised instance.
pub(crate) struct InstanceHandle {
    info: Arc<Mutex<Instance>>,
    stop: watch::Sender<Ask>,
    task: JoinHandle<()>,
}

impl InstanceHandle {
    pub(crate) fn snapshot(&self) -> Instance {
        lock(&self.info).clone()
    }

    pub(crate) fn request_stop(&self) {
        self.stop.send_replace(Ask::Stop);
    }

    pub(crate) fn request_detach(&self) {
        self.stop.send_replace(Ask::Detach);
    }

    /// Stops the instance and waits until its processes are gone.
    pub(crate) async fn stop(self) {
        self.request_stop();
        if let Err(err) = self.task.await {
            tracing::error!(%err, "instance supervisor failed");
        }
    }

    /// Stops supervising, leaving the processes running; waits until the supervisor
    /// has let go.
    pub(crate) async fn detach(self) {
        self.request_detach();
        if let Err(err) = self.task.await {
            tracing::error!(%err, "instance supervisor failed");
        }
    }
}

/// Starts supervising a new instance on a fresh port. The receiver reports whether
/// its first launch became ready; after a failed first launch nothing is left running.
/// `port`: the one a previous rampart recorded for this instance, kept so the next
/// start finds it there; `None` picks a free one.
pub(crate) fn launch(
    shared: &Arc<Shared>,
    version: &str,
    index: u32,
    port: Option<u16>,
) -> Result<(InstanceHandle, oneshot::Receiver<Result<(), BackendError>>), BackendError> {
    let id = instance_id(version, index);
    let port = match port {
        Some(port) => port,
        None => free_port(&shared.ports_in_use()).map_err(|source| BackendError::NoFreePort {
            instance: id.clone(),
            source,
        })?,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let info = Arc::new(Mutex::new(Instance {
        id: id.clone(),
        version: version.to_string(),
        addr,
        state: InstanceState::Starting,
        pid: None,
        restarts: 0,
    }));
    let (stop, stop_rx) = watch::channel(Ask::Run);
    let (first_ready, first_ready_rx) = oneshot::channel();
    let supervisor = Supervisor {
        paths: InstancePaths::new(&shared.run_dir, &shared.log_dir, &id),
        shared: shared.clone(),
        version: version.to_string(),
        index,
        id,
        addr,
        info: info.clone(),
        stop: stop_rx,
    };
    let task = tokio::spawn(supervisor.run(None, first_ready));
    Ok((InstanceHandle { info, stop, task }, first_ready_rx))
}

/// Takes over an instance a previous rampart launched (its process alive and ready,
/// checked by the caller): supervised from now on like one launched here.
pub(crate) fn adopt(shared: &Arc<Shared>, record: &InstanceRecord) -> InstanceHandle {
    let id = instance_id(&record.version, record.index);
    let addr = SocketAddr::from(([127, 0, 0, 1], record.port));
    let paths = InstancePaths::new(&shared.run_dir, &shared.log_dir, &id);
    if let Err(err) = pidfile::write(&paths.pid, record.pid) {
        tracing::warn!(instance = %id, %err, "cannot write the pid file of a re-adopted instance");
    }
    let info = Arc::new(Mutex::new(Instance {
        id: id.clone(),
        version: record.version.clone(),
        addr,
        state: InstanceState::Ready,
        pid: Some(record.pid),
        restarts: 0,
    }));
    let max_bytes = shared.config.log_max_bytes;
    let running = Running {
        leader: Leader::Adopted {
            pid: record.pid,
            start_time: record.start_time,
        },
        group: ProcessGroup::new(record.pid, !shared.outlive),
        logs: Vec::new(),
        rotators: vec![
            logs::rotate_in_place(paths.stdout.clone(), max_bytes),
            logs::rotate_in_place(paths.stderr.clone(), max_bytes),
        ],
        ready_since: Instant::now(),
    };
    let (stop, stop_rx) = watch::channel(Ask::Run);
    let (first_ready, _) = oneshot::channel();
    let supervisor = Supervisor {
        paths,
        shared: shared.clone(),
        version: record.version.clone(),
        index: record.index,
        id,
        addr,
        info: info.clone(),
        stop: stop_rx,
    };
    let task = tokio::spawn(supervisor.run(Some(running), first_ready));
    InstanceHandle { info, stop, task }
}

/// Binding port 0 lets the kernel pick a free port; it is released again at once so
/// the instance can bind it. Another program may grab it in between, in which case
/// the instance fails its ready check and the error says so. A port just handed to
/// one of our own instances that has not bound it yet looks free to the kernel, so
/// those are skipped explicitly.
fn free_port(taken: &[u16]) -> std::io::Result<u16> {
    const ATTEMPTS: usize = 32;
    for _ in 0..ATTEMPTS {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("the kernel kept offering ports already given to instances ({ATTEMPTS} tries)"),
    ))
}

struct Running {
    leader: Leader,
    group: ProcessGroup,
    /// Readers of piped output: drained once the processes are gone.
    logs: Vec<JoinHandle<()>>,
    /// Size keepers of log files the instance writes itself: aborted at the end.
    rotators: Vec<JoinHandle<()>>,
    ready_since: Instant,
}

enum LaunchError {
    /// A stop was requested while launching.
    Stopped,
    Failed(BackendError),
}

enum Readiness {
    Ready,
    Stopped,
    Exited(String),
    TimedOut(String),
}

struct Supervisor {
    shared: Arc<Shared>,
    version: String,
    index: u32,
    id: String,
    addr: SocketAddr,
    paths: InstancePaths,
    info: Arc<Mutex<Instance>>,
    stop: watch::Receiver<Ask>,
}

impl Supervisor {
    /// `adopted`: an instance a previous rampart launched, already ready.
    async fn run(
        mut self,
        adopted: Option<Running>,
        first_ready: oneshot::Sender<Result<(), BackendError>>,
    ) {
        let first = match adopted {
            Some(running) => Ok(running),
            None => self.launch().await,
        };
        let mut running = match first {
            Ok(running) => running,
            Err(failure) => {
                self.set_state(InstanceState::Stopped, None);
                let error = match failure {
                    LaunchError::Failed(error) => error,
                    LaunchError::Stopped => BackendError::Cancelled {
                        instance: self.id.clone(),
                    },
                };
                let _ = first_ready.send(Err(error));
                return;
            }
        };
        self.set_state(InstanceState::Ready, running.leader.pid());
        let _ = first_ready.send(Ok(()));

        let mut failures = 0u32;
        loop {
            let reason = tokio::select! {
                biased;
                ask = stop_requested(&mut self.stop) => {
                    if ask == Ask::Detach {
                        self.let_go(running);
                        return;
                    }
                    self.set_state(InstanceState::Stopping, running.leader.pid());
                    self.terminate(running).await;
                    self.set_state(InstanceState::Stopped, None);
                    return;
                }
                reason = running.leader.wait() => reason,
            };
            if running.ready_since.elapsed() >= STABLE_AFTER {
                failures = 0;
            }
            tracing::warn!(service = %self.shared.service, instance = %self.id, %reason, "instance crashed");
            self.clean_up_after_exit(running).await;
            self.set_state(InstanceState::Crashed, None);
            self.shared.emit(
                &self.version,
                BackendEventKind::InstanceCrashed {
                    instance: self.id.clone(),
                    reason,
                },
            );

            running = loop {
                let delay = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut self.stop) => {
                        self.set_state(InstanceState::Stopped, None);
                        return;
                    }
                    () = tokio::time::sleep(delay) => {}
                }
                // A rampart taking over (graceful upgrade) restarts it instead.
                let mut held = self.shared.held.subscribe();
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut self.stop) => {
                        self.set_state(InstanceState::Stopped, None);
                        return;
                    }
                    _ = held.wait_for(|held| !*held) => {}
                }
                self.set_state(InstanceState::Restarting, None);
                match self.launch().await {
                    Ok(running) => break running,
                    Err(LaunchError::Stopped) => {
                        self.set_state(InstanceState::Stopped, None);
                        return;
                    }
                    Err(LaunchError::Failed(error)) => {
                        let retry_in = backoff(failures);
                        tracing::warn!(instance = %self.id, %error, "restart failed");
                        self.set_state(InstanceState::Crashed, None);
                        self.shared.emit(
                            &self.version,
                            BackendEventKind::RestartFailed {
                                instance: self.id.clone(),
                                error: error.to_string(),
                                retry_in_ms: u64::try_from(retry_in.as_millis())
                                    .unwrap_or(u64::MAX),
                            },
                        );
                    }
                }
            };
            {
                let mut info = lock(&self.info);
                info.restarts = info.restarts.saturating_add(1);
            }
            self.set_state(InstanceState::Ready, running.leader.pid());
            tracing::info!(instance = %self.id, addr = %self.addr, "instance restarted");
            self.shared.emit(
                &self.version,
                BackendEventKind::InstanceRestarted {
                    instance: self.id.clone(),
                },
            );
        }
    }

    fn set_state(&self, state: InstanceState, pid: Option<u32>) {
        let mut info = lock(&self.info);
        info.state = state;
        info.pid = pid;
    }

    /// Spawns the command and waits until it answers its ready check. On any failure
    /// the process group is gone before this returns.
    async fn launch(&mut self) -> Result<Running, LaunchError> {
        let config = &self.shared.config;
        let outlive = self.shared.outlive;
        let output = if outlive {
            let open = |path: &std::path::Path| {
                logs::open_for_child(path).map_err(|err| {
                    LaunchError::Failed(BackendError::io(
                        format!("cannot open instance log {}", path.display()),
                        err,
                    ))
                })
            };
            Some((open(&self.paths.stdout)?, open(&self.paths.stderr)?))
        } else {
            None
        };
        let (mut command, line) = command::build(
            config,
            &self.shared.service,
            &self.version,
            self.addr,
            self.index,
            output,
        );
        command.envs(self.shared.version_env(&self.version));
        let mut child = self
            .shared
            .spawner
            .spawn(command, !outlive)
            .await
            .map_err(|source| {
                LaunchError::Failed(BackendError::Spawn {
                    instance: self.id.clone(),
                    command: line.clone(),
                    source,
                })
            })?;
        let Some(pid) = child.id() else {
            // Only possible once the child was reaped, which nothing did yet.
            return Err(LaunchError::Failed(BackendError::Internal(format!(
                "instance {} has no process id right after spawning",
                self.id
            ))));
        };
        let group = ProcessGroup::new(pid, !outlive);
        match pidfile::write(&self.paths.pid, pid) {
            Ok(start_time) => self.record(pid, start_time).await,
            Err(err) => {
                tracing::warn!(instance = %self.id, %err, "cannot write pid file; a crash of rampart could orphan this instance's grandchildren")
            }
        }
        let max_bytes = config.log_max_bytes;
        let (logs, rotators) = if outlive {
            (
                Vec::new(),
                vec![
                    logs::rotate_in_place(self.paths.stdout.clone(), max_bytes),
                    logs::rotate_in_place(self.paths.stderr.clone(), max_bytes),
                ],
            )
        } else {
            let logs = [
                child
                    .stdout
                    .take()
                    .map(|out| logs::capture(out, self.paths.stdout.clone(), max_bytes)),
                child
                    .stderr
                    .take()
                    .map(|err| logs::capture(err, self.paths.stderr.clone(), max_bytes)),
            ];
            let [Some(stdout), Some(stderr)] = logs else {
                return Err(LaunchError::Failed(BackendError::Internal(
                    "child output was not piped".into(),
                )));
            };
            (vec![stdout, stderr], Vec::new())
        };
        let mut running = Running {
            leader: Leader::Child(child),
            group,
            logs,
            rotators,
            ready_since: Instant::now(),
        };

        let timeout = config.ready_timeout.get();
        match self.wait_ready(&mut running.leader, timeout).await {
            Readiness::Ready => {
                running.ready_since = Instant::now();
                Ok(running)
            }
            Readiness::Stopped => {
                self.terminate(running).await;
                Err(LaunchError::Stopped)
            }
            Readiness::Exited(status) => {
                self.clean_up_after_exit(running).await;
                Err(LaunchError::Failed(BackendError::ExitedBeforeReady {
                    instance: self.id.clone(),
                    status,
                    stderr_tail: logs::tail(&self.paths.stderr),
                }))
            }
            Readiness::TimedOut(last_error) => {
                self.terminate(running).await;
                Err(LaunchError::Failed(BackendError::NotReady {
                    instance: self.id.clone(),
                    timeout,
                    last_error,
                    stderr_tail: logs::tail(&self.paths.stderr),
                }))
            }
        }
    }

    async fn wait_ready(&mut self, leader: &mut Leader, timeout: Duration) -> Readiness {
        let deadline = Instant::now() + timeout;
        let path = self.shared.config.ready_path.as_str();
        let mut last_error = String::from("no ready check ran");
        loop {
            if *self.stop.borrow() != Ask::Run {
                return Readiness::Stopped;
            }
            match leader.try_wait() {
                Ok(Some(status)) => return Readiness::Exited(status),
                Ok(None) => {}
                Err(err) => return Readiness::TimedOut(format!("cannot check the process: {err}")),
            }
            match tokio::time::timeout_at(deadline, ready::probe(self.addr, path)).await {
                Ok(Ok(())) => return Readiness::Ready,
                Ok(Err(reason)) => last_error = reason,
                Err(_) => return Readiness::TimedOut(last_error),
            }
            tokio::select! {
                _ = stop_requested(&mut self.stop) => return Readiness::Stopped,
                () = tokio::time::sleep_until(deadline.min(Instant::now() + READY_POLL)) => {}
            }
            if Instant::now() >= deadline {
                return Readiness::TimedOut(last_error);
            }
        }
    }

    /// SIGTERM, grace, SIGKILL for the whole group; then the bookkeeping.
    async fn terminate(&self, running: Running) {
        let Running {
            mut leader,
            group,
            logs,
            rotators,
            ..
        } = running;
        let pid = leader.pid();
        group
            .terminate(&mut leader, self.shared.config.stop_grace.get())
            .await;
        self.forget(pid, logs, rotators).await;
    }

    /// The leader exited on its own; whatever it left in its group goes too, so the
    /// port is free for a restart.
    async fn clean_up_after_exit(&self, running: Running) {
        let pid = running.leader.pid();
        running.group.kill_remaining();
        self.forget(pid, running.logs, running.rotators).await;
    }

    /// Lets the processes run on, unsupervised, for the next rampart to re-adopt: the
    /// pid file and the record stay.
    fn let_go(&self, running: Running) {
        running.group.release();
        for task in running.logs.iter().chain(&running.rotators) {
            task.abort();
        }
        tracing::info!(instance = %self.id, pid = ?running.leader.pid(), "instance left running for the next rampart");
    }

    async fn forget(
        &self,
        pid: Option<u32>,
        logs: Vec<JoinHandle<()>>,
        rotators: Vec<JoinHandle<()>>,
    ) {
        for rotator in rotators {
            rotator.abort();
        }
        drain_logs(logs).await;
        pidfile::remove(&self.paths.pid);
        if let (Some(ledger), Some(pid)) = (&self.shared.ledger, pid)
            && let Err(err) = ledger.forget(&self.shared.service, &self.id, pid).await
        {
            tracing::warn!(instance = %self.id, %err, "cannot remove the instance's record");
        }
    }

    /// Records the launched process, so a later rampart can re-adopt it.
    async fn record(&self, pid: u32, start_time: u64) {
        let Some(ledger) = &self.shared.ledger else {
            return;
        };
        let record = InstanceRecord {
            service: self.shared.service.clone(),
            instance: self.id.clone(),
            version: self.version.clone(),
            index: self.index,
            pid,
            start_time,
            port: self.addr.port(),
        };
        if let Err(err) = ledger.save(record).await {
            tracing::warn!(instance = %self.id, %err, "cannot record the instance; the next rampart will not re-adopt it");
        }
    }
}

async fn drain_logs(logs: Vec<JoinHandle<()>>) {
    for log in logs {
        if tokio::time::timeout(LOG_DRAIN, log).await.is_err() {
            tracing::debug!("instance log reader still open after its processes were killed");
        }
    }
}

/// Completes once a stop or detach is asked; a dropped handle means stop.
async fn stop_requested(stop: &mut watch::Receiver<Ask>) -> Ask {
    match stop.wait_for(|ask| *ask != Ask::Run).await {
        Ok(ask) => *ask,
        Err(_) => Ask::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let delays: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
