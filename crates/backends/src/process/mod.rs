//! The `process` backend: rampart runs each instance as a local process group.
//!
//! Layout under `data_dir`: `run/<service>/<version>-<index>.pid` (pid files, see
//! [`pidfile`]) and `logs/<service>/<version>-<index>.{stdout,stderr}.log` (bounded,
//! see [`logs`]). Instances listen on 127.0.0.1 ports picked by rampart and passed
//! as `{port}`; the command runs through `/bin/sh -c` (see [`command`]).
//!
//! No orphans, in three layers: each instance is its own process group, stopped as a
//! group (SIGTERM, `stop_grace`, SIGKILL); its leader carries `PR_SET_PDEATHSIG =
//! SIGKILL` (see [`spawner`]) so it dies with rampart even on `kill -9`; and what that
//! cannot reach (grandchildren of a killed rampart) is killed through the pid files
//! when the backend is next created.

mod command;
mod group;
mod instance;
mod logs;
mod orphans;
mod pidfile;
mod ready;
mod spawner;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rampart_config::ProcessBackendConfig;
use tokio::runtime::Handle;
use tokio::sync::{OwnedMutexGuard, broadcast};

use self::instance::InstanceHandle;
use self::spawner::Spawner;
use crate::{
    Backend, BackendError, BackendEvent, BackendEventKind, BoxFuture, Instance, InstanceLedger,
    InstanceRecord, ProcessOptions, VersionSpec,
};

/// How long a re-adoption candidate gets to answer its ready check.
const ADOPT_READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

const EVENT_CAPACITY: usize = 256;

/// Locks a std mutex, ignoring poisoning: every critical section here leaves the data
/// consistent, so a panic elsewhere does not make it unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// State shared by the backend and its instance supervisors.
pub(crate) struct Shared {
    service: String,
    config: ProcessBackendConfig,
    run_dir: PathBuf,
    log_dir: PathBuf,
    spawner: Spawner,
    events: broadcast::Sender<BackendEvent>,
    /// version → instance index → instance.
    versions: Mutex<BTreeMap<String, BTreeMap<u32, InstanceHandle>>>,
    /// version → the deploy's extra environment, kept for restarts and scale-ups.
    version_env: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Instances keep running when rampart exits (no parent-death signal, output
    /// written to files by the instance itself).
    outlive: bool,
    ledger: Option<Arc<dyn InstanceLedger>>,
    /// While true, crashed instances wait before restarting (a graceful upgrade is
    /// handing them to another rampart).
    held: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn version_env(&self, version: &str) -> BTreeMap<String, String> {
        lock(&self.version_env)
            .get(version)
            .cloned()
            .unwrap_or_default()
    }

    fn snapshot(&self, version: &str) -> Vec<Instance> {
        lock(&self.versions)
            .get(version)
            .map(|instances| instances.values().map(InstanceHandle::snapshot).collect())
            .unwrap_or_default()
    }

    fn ports_in_use(&self) -> Vec<u16> {
        lock(&self.versions)
            .values()
            .flat_map(|instances| instances.values())
            .map(|instance| instance.snapshot().addr.port())
            .collect()
    }

    pub(crate) fn emit(&self, version: &str, kind: BackendEventKind) {
        let event = BackendEvent {
            version: version.to_string(),
            kind,
            instances: self.snapshot(version),
        };
        // No subscribers is fine: nobody needs to hear it.
        let _ = self.events.send(event);
    }
}

pub struct ProcessBackend {
    shared: Arc<Shared>,
    /// Serialises start/scale/stop of one version; different versions proceed in
    /// parallel.
    version_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    closed: AtomicBool,
    /// Instances a previous rampart recorded and this one has not yet taken over or
    /// stopped, by instance id; `None` until first read from the ledger.
    recorded: tokio::sync::Mutex<Option<BTreeMap<String, InstanceRecord>>>,
}

/// Kills what a previous run left of services that are no longer configured: their
/// pid files (under `<data_dir>/run/<service>/`) are read by no backend, so the
/// grandchildren of a killed rampart (the parent-death signal reaches only each
/// instance's leader) would run on with nothing claiming them. Called once at start,
/// before any backend exists. Returns the process groups killed.
///
/// A run that re-adopts instances instead of killing them will claim them through
/// the same pid files; whatever no configured service claims is still this.
pub fn kill_leftovers_of_unconfigured(
    data_dir: &Path,
    configured: &[&str],
) -> Result<Vec<u32>, BackendError> {
    let run = data_dir.join("run");
    let entries = match std::fs::read_dir(&run) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(BackendError::io(
                format!("cannot read {}", run.display()),
                err,
            ));
        }
    };
    let claimed: Vec<String> = configured.iter().map(|s| command::file_safe(s)).collect();
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let folder = entry.file_name().to_string_lossy().into_owned();
        if claimed.contains(&folder) || !entry.path().is_dir() {
            continue;
        }
        let groups = pidfile::kill_leftovers(&entry.path()).map_err(|err| {
            BackendError::io(
                format!("cannot read pid files in {}", entry.path().display()),
                err,
            )
        })?;
        if !groups.is_empty() {
            tracing::warn!(
                service = %folder,
                count = groups.len(),
                "killed instances of a service no longer configured, left over from a previous run"
            );
        }
        killed.extend(groups);
        // Empty now; a service added back later creates it again.
        let _ = std::fs::remove_dir(entry.path());
    }
    Ok(killed)
}

impl ProcessBackend {
    /// Creates the backend of one service and kills instances that a previous rampart
    /// run left behind (recorded in its pid files). Must be called inside a Tokio
    /// runtime, whose lifetime bounds the instances'.
    pub fn new(
        service: &str,
        config: ProcessBackendConfig,
        data_dir: &Path,
    ) -> Result<Self, BackendError> {
        Self::with_options(service, config, data_dir, ProcessOptions::default())
    }

    /// [`ProcessBackend::new`], with instances that outlive rampart when
    /// `options.outlive`: then nothing a previous run left is killed here; the
    /// instances it recorded in `options.ledger` are re-adopted by `start` when alive
    /// and ready, and the rest is stopped (see `stop_unwanted`).
    pub fn with_options(
        service: &str,
        config: ProcessBackendConfig,
        data_dir: &Path,
        options: ProcessOptions,
    ) -> Result<Self, BackendError> {
        let outlive = options.outlive && options.ledger.is_some();
        let runtime = Handle::try_current().map_err(|_| BackendError::NoRuntime)?;
        let folder = command::file_safe(service);
        let run_dir = data_dir.join("run").join(&folder);
        let log_dir = data_dir.join("logs").join(&folder);
        for dir in [&run_dir, &log_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|err| BackendError::io(format!("cannot create {}", dir.display()), err))?;
        }
        let leftovers = if outlive {
            Vec::new()
        } else {
            pidfile::kill_leftovers(&run_dir).map_err(|err| {
                BackendError::io(
                    format!("cannot read pid files in {}", run_dir.display()),
                    err,
                )
            })?
        };
        if !leftovers.is_empty() {
            tracing::warn!(
                service,
                count = leftovers.len(),
                "killed instances left over from a previous run"
            );
        }
        let spawner = Spawner::start(runtime, &folder)
            .map_err(|err| BackendError::io("cannot start the process spawner thread", err))?;
        Ok(Self {
            shared: Arc::new(Shared {
                service: service.to_string(),
                config,
                run_dir,
                log_dir,
                spawner,
                events: broadcast::channel(EVENT_CAPACITY).0,
                versions: Mutex::new(BTreeMap::new()),
                version_env: Mutex::new(BTreeMap::new()),
                outlive,
                ledger: options.ledger,
                held: tokio::sync::watch::channel(false).0,
            }),
            version_locks: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            recorded: tokio::sync::Mutex::new(None),
        })
    }

    /// The recorded instances not yet taken over, read from the ledger once. The
    /// first read also stops what pid files name but no record claims: processes a
    /// previous rampart launched and did not get to record, or forgot.
    async fn recorded(
        &self,
    ) -> tokio::sync::MutexGuard<'_, Option<BTreeMap<String, InstanceRecord>>> {
        let mut recorded = self.recorded.lock().await;
        if recorded.is_some() || !self.shared.outlive {
            return recorded;
        }
        let Some(ledger) = &self.shared.ledger else {
            return recorded;
        };
        let records = match ledger.recorded(&self.shared.service).await {
            Ok(records) => records,
            Err(err) => {
                tracing::error!(service = %self.shared.service, %err, "cannot read the recorded instances; none is re-adopted");
                Vec::new()
            }
        };
        let grace = self.shared.config.stop_grace.get();
        match pidfile::entries(&self.shared.run_dir) {
            Ok(entries) => {
                for (path, pid, start_time) in entries {
                    let claimed = records
                        .iter()
                        .any(|r| r.pid == pid && r.start_time == start_time);
                    if !claimed {
                        if pidfile::alive(pid, start_time) {
                            tracing::warn!(service = %self.shared.service, pid, file = %path.display(), "stopping an instance process no record claims");
                            orphans::stop_group(pid, start_time, grace).await;
                        }
                        pidfile::remove(&path);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(service = %self.shared.service, %err, "cannot read the pid files")
            }
        }
        *recorded = Some(
            records
                .into_iter()
                .map(|record| (record.instance.clone(), record))
                .collect(),
        );
        recorded
    }

    /// Takes the recorded instances of `version` out of the unclaimed ones.
    async fn take_recorded(&self, version: &str) -> Vec<InstanceRecord> {
        let mut recorded = self.recorded().await;
        let Some(recorded) = recorded.as_mut() else {
            return Vec::new();
        };
        let ids: Vec<String> = recorded
            .values()
            .filter(|r| r.version == version)
            .map(|r| r.instance.clone())
            .collect();
        ids.iter().filter_map(|id| recorded.remove(id)).collect()
    }

    /// Stops a recorded instance nobody wants any more and forgets it.
    async fn retire(&self, record: &InstanceRecord) {
        if pidfile::alive(record.pid, record.start_time) {
            tracing::warn!(service = %self.shared.service, instance = %record.instance, pid = record.pid, "stopping an instance left by a previous rampart that nothing claims");
            orphans::stop_group(
                record.pid,
                record.start_time,
                self.shared.config.stop_grace.get(),
            )
            .await;
        }
        let paths = command::InstancePaths::new(
            &self.shared.run_dir,
            &self.shared.log_dir,
            &record.instance,
        );
        pidfile::remove(&paths.pid);
        if let Some(ledger) = &self.shared.ledger
            && let Err(err) = ledger
                .forget(&record.service, &record.instance, record.pid)
                .await
        {
            tracing::warn!(instance = %record.instance, %err, "cannot remove the instance's record");
        }
    }

    /// Whether a recorded instance is still its process and answers its ready check.
    async fn adoptable(&self, record: &InstanceRecord) -> bool {
        if !pidfile::alive(record.pid, record.start_time) {
            return false;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], record.port));
        let deadline = tokio::time::Instant::now() + ADOPT_READY_WITHIN;
        loop {
            match ready::probe(addr, &self.shared.config.ready_path).await {
                Ok(()) => return true,
                Err(reason) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(instance = %record.instance, %reason, "a recorded instance is alive but not ready; it is replaced");
                    return false;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// The port a dead recorded instance is launched on again: its own, once a
    /// process there that no record claims is stopped; a fresh one if the port
    /// belongs to something rampart knows.
    async fn reclaim_port(
        &self,
        record: &InstanceRecord,
        others: &[InstanceRecord],
    ) -> Option<u16> {
        let Some(owner) = orphans::listener_on(record.port) else {
            return Some(record.port);
        };
        let known = others.iter().any(|r| r.pid == owner)
            || lock(&self.shared.versions)
                .values()
                .flat_map(|instances| instances.values())
                .any(|i| i.snapshot().pid == Some(owner));
        if known || owner == std::process::id() {
            return None;
        }
        tracing::warn!(service = %self.shared.service, instance = %record.instance, port = record.port, pid = owner, "stopping a process no record claims that listens on a recorded instance's port");
        orphans::stop_process(owner, self.shared.config.stop_grace.get()).await;
        (orphans::listener_on(record.port).is_none()).then_some(record.port)
    }

    pub fn config(&self) -> &ProcessBackendConfig {
        &self.shared.config
    }

    /// Where an instance's stdout and stderr are logged (`index` from 0).
    pub fn log_paths(&self, version: &str, index: u32) -> (PathBuf, PathBuf) {
        let id = instance::instance_id(version, index);
        let paths = command::InstancePaths::new(&self.shared.run_dir, &self.shared.log_dir, &id);
        (paths.stdout, paths.stderr)
    }

    async fn lock_version(&self, version: &str) -> OwnedMutexGuard<()> {
        let version_lock = lock(&self.version_locks)
            .entry(version.to_string())
            .or_default()
            .clone();
        version_lock.lock_owned().await
    }

    fn ensure_open(&self) -> Result<(), BackendError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(BackendError::ShutDown)
        } else {
            Ok(())
        }
    }

    async fn start_version(&self, spec: VersionSpec) -> Result<Vec<Instance>, BackendError> {
        let version = spec.version;
        let invalid = |reason: String| BackendError::InvalidSpec {
            version: version.clone(),
            reason,
        };
        command::check_version(&version).map_err(invalid)?;
        if spec.instances == 0 {
            return Err(invalid("at least one instance is needed".into()));
        }
        if !spec.addresses.is_empty() {
            return Err(invalid(
                "the process backend picks its own 127.0.0.1 ports; addresses are for the static backend".into(),
            ));
        }
        self.ensure_open()?;
        let _version_guard = self.lock_version(&version).await;
        self.ensure_open()?;

        let running = lock(&self.shared.versions).contains_key(&version);
        if running {
            // Adopt: the version already runs; bring it to the requested size.
            return self.resize(&version, spec.instances).await;
        }
        lock(&self.shared.versions).insert(version.clone(), BTreeMap::new());
        lock(&self.shared.version_env).insert(version.clone(), spec.env);
        // Re-adoption: what a previous rampart launched of this version and still
        // runs and answers is taken over; the dead are launched again on their port.
        let records = self.take_recorded(&version).await;
        let mut launches: Vec<(u32, Option<u16>)> = Vec::new();
        for index in 0..spec.instances {
            let Some(record) = records.iter().find(|r| r.index == index) else {
                launches.push((index, None));
                continue;
            };
            if self.adoptable(record).await {
                tracing::info!(service = %self.shared.service, instance = %record.instance, pid = record.pid, "re-adopted a running instance");
                let handle = instance::adopt(&self.shared, record);
                if let Some(instances) = lock(&self.shared.versions).get_mut(&version) {
                    instances.insert(index, handle);
                }
                continue;
            }
            self.retire(record).await;
            launches.push((index, self.reclaim_port(record, &records).await));
        }
        for record in records.iter().filter(|r| r.index >= spec.instances) {
            self.retire(record).await;
        }
        if let Err(err) = self.add_instances(&version, &launches).await {
            lock(&self.shared.versions).remove(&version);
            lock(&self.shared.version_env).remove(&version);
            return Err(err);
        }
        self.shared.emit(&version, BackendEventKind::Started);
        Ok(self.shared.snapshot(&version))
    }

    /// Launches instances with the given indices and waits until all are ready; if
    /// any fails, all of them are stopped again and the first real error returned.
    async fn add_instances(
        &self,
        version: &str,
        launches: &[(u32, Option<u16>)],
    ) -> Result<(), BackendError> {
        let mut pending = FuturesUnordered::new();
        let mut failure = None;
        for &(index, port) in launches {
            match instance::launch(&self.shared, version, index, port) {
                Ok((handle, first_ready)) => {
                    if let Some(instances) = lock(&self.shared.versions).get_mut(version) {
                        instances.insert(index, handle);
                    }
                    pending.push(first_ready);
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        if failure.is_none() {
            while let Some(outcome) = pending.next().await {
                let outcome = outcome.unwrap_or_else(|_| {
                    Err(BackendError::Internal(
                        "an instance supervisor ended without an answer".into(),
                    ))
                });
                if let Err(err) = outcome {
                    failure = Some(err);
                    break;
                }
            }
        }
        let Some(failure) = failure else {
            return Ok(());
        };
        let launched: Vec<InstanceHandle> = {
            let mut versions = lock(&self.shared.versions);
            match versions.get_mut(version) {
                Some(instances) => launches
                    .iter()
                    .filter_map(|(i, _)| instances.remove(i))
                    .collect(),
                None => Vec::new(),
            }
        };
        stop_all(launched).await;
        Err(failure)
    }

    async fn resize(&self, version: &str, count: u32) -> Result<Vec<Instance>, BackendError> {
        if count == 0 {
            return Err(BackendError::InvalidSpec {
                version: version.to_string(),
                reason: "scale to at least one instance; stop the version to remove it".into(),
            });
        }
        let current: Vec<u32> = match lock(&self.shared.versions).get(version) {
            Some(instances) => instances.keys().copied().collect(),
            None => {
                return Err(BackendError::UnknownVersion {
                    version: version.to_string(),
                });
            }
        };
        let current_count = u32::try_from(current.len()).unwrap_or(u32::MAX);
        if count > current_count {
            // Fill gaps first, so indices (and `{instance}`) stay small and dense.
            let added: Vec<(u32, Option<u16>)> = (0..)
                .filter(|i| !current.contains(i))
                .take((count - current_count) as usize)
                .map(|i| (i, None))
                .collect();
            self.add_instances(version, &added).await?;
            self.shared.emit(version, BackendEventKind::Scaled);
        } else if count < current_count {
            let surplus = (current_count - count) as usize;
            let removed: Vec<InstanceHandle> = {
                let mut versions = lock(&self.shared.versions);
                match versions.get_mut(version) {
                    Some(instances) => current
                        .iter()
                        .rev()
                        .take(surplus)
                        .filter_map(|i| instances.remove(i))
                        .collect(),
                    None => Vec::new(),
                }
            };
            // Announced first, so the router stops sending before the processes go.
            self.shared.emit(version, BackendEventKind::Scaled);
            stop_all(removed).await;
        }
        Ok(self.shared.snapshot(version))
    }

    async fn stop_version(&self, version: &str) -> Result<(), BackendError> {
        let _version_guard = self.lock_version(version).await;
        let removed = lock(&self.shared.versions).remove(version);
        lock(&self.shared.version_env).remove(version);
        // Recorded by a previous rampart and never re-adopted: stopped all the same.
        for record in self.take_recorded(version).await {
            self.retire(&record).await;
        }
        let Some(instances) = removed else {
            return Ok(());
        };
        self.shared.emit(version, BackendEventKind::Stopped);
        stop_all(instances.into_values().collect()).await;
        Ok(())
    }
}

async fn stop_all(instances: Vec<InstanceHandle>) {
    futures_util::future::join_all(instances.into_iter().map(InstanceHandle::stop)).await;
}

impl Backend for ProcessBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn start(&self, spec: VersionSpec) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        Box::pin(self.start_version(spec))
    }

    fn scale(
        &self,
        version: &str,
        instances: u32,
    ) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        let version = version.to_string();
        Box::pin(async move {
            self.ensure_open()?;
            let _version_guard = self.lock_version(&version).await;
            self.ensure_open()?;
            self.resize(&version, instances).await
        })
    }

    fn stop(&self, version: &str) -> BoxFuture<'_, Result<(), BackendError>> {
        let version = version.to_string();
        Box::pin(async move { self.stop_version(&version).await })
    }

    fn instances(&self, version: &str) -> Vec<Instance> {
        self.shared.snapshot(version)
    }

    fn versions(&self) -> Vec<String> {
        lock(&self.shared.versions).keys().cloned().collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<BackendEvent> {
        self.shared.events.subscribe()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        if self.shared.outlive {
            return self.hand_over();
        }
        self.stop_all()
    }

    fn stop_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::SeqCst);
            let versions = self.versions();
            let stops = versions.iter().map(|version| self.stop_version(version));
            for result in futures_util::future::join_all(stops).await {
                if let Err(err) = result {
                    tracing::warn!(%err, "stopping a version during shutdown failed");
                }
            }
        })
    }

    fn hold_restarts(&self, held: bool) {
        self.shared.held.send_replace(held);
    }

    fn hand_over(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::SeqCst);
            let handles: Vec<InstanceHandle> = {
                let mut versions = lock(&self.shared.versions);
                std::mem::take(&mut *versions)
                    .into_values()
                    .flat_map(BTreeMap::into_values)
                    .collect()
            };
            futures_util::future::join_all(handles.into_iter().map(InstanceHandle::detach)).await;
        })
    }

    fn stop_unwanted<'a>(&'a self, wanted: &'a [String]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let unwanted: Vec<InstanceRecord> = {
                let mut recorded = self.recorded().await;
                let Some(recorded) = recorded.as_mut() else {
                    return;
                };
                let ids: Vec<String> = recorded
                    .values()
                    .filter(|r| !wanted.contains(&r.version))
                    .map(|r| r.instance.clone())
                    .collect();
                ids.iter().filter_map(|id| recorded.remove(id)).collect()
            };
            for record in unwanted {
                self.retire(&record).await;
            }
        })
    }
}

impl Drop for ProcessBackend {
    /// Dropped without `shutdown`: the supervisors still stop their instances
    /// (SIGTERM, grace, SIGKILL) in the background while the runtime lives.
    fn drop(&mut self) {
        for instances in lock(&self.shared.versions).values() {
            for instance in instances.values() {
                if self.shared.outlive {
                    instance.request_detach();
                } else {
                    instance.request_stop();
                }
            }
        }
    }
}
