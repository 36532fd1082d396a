//! The contract every backend fulfils, and the values it speaks in.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::BackendError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Launched, not yet answering its ready check.
    Starting,
    /// Answering; the router may send it traffic.
    Ready,
    /// Exited unexpectedly; a restart is scheduled.
    Crashed,
    /// Being relaunched after a crash, on the same address.
    Restarting,
    Stopping,
    Stopped,
}

/// One running copy of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Stable for the instance's life, across restarts: `<version>-<index>`.
    pub id: String,
    pub version: String,
    pub addr: SocketAddr,
    pub state: InstanceState,
    /// The process (group leader) id, when rampart runs the instance itself.
    pub pid: Option<u32>,
    /// How often it was restarted after a crash.
    pub restarts: u32,
}

impl Instance {
    pub fn is_ready(&self) -> bool {
        self.state == InstanceState::Ready
    }
}

/// What a deploy asks a backend to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpec {
    pub version: String,
    /// How many instances; ignored by the static backend, whose count is the number
    /// of addresses.
    pub instances: u32,
    /// Static backend only: the upstreams of this version, named by the deploy. Empty
    /// means "from the config".
    pub addresses: Vec<SocketAddr>,
    /// Process backend: environment for this version's instances, on top of the
    /// configured `env` (a deploy may set release-specific settings).
    pub env: BTreeMap<String, String>,
}

impl VersionSpec {
    pub fn new(version: impl Into<String>, instances: u32) -> Self {
        Self {
            version: version.into(),
            instances,
            addresses: Vec::new(),
            env: BTreeMap::new(),
        }
    }

    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    pub fn with_addresses(mut self, addresses: Vec<SocketAddr>) -> Self {
        self.addresses = addresses;
        self
    }
}

/// A change in a version's instance set. `instances` is the version's full set after
/// the change, so a subscriber can replace what it had instead of patching it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendEvent {
    pub version: String,
    pub kind: BackendEventKind,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendEventKind {
    /// All instances of the version are ready.
    Started,
    /// Instances were added or removed.
    Scaled,
    /// The version is gone; `instances` is empty.
    Stopped,
    InstanceCrashed {
        instance: String,
        reason: String,
    },
    /// Back on the same address and ready.
    InstanceRestarted {
        instance: String,
    },
    /// A restart attempt failed; another follows after `retry_in_ms`.
    RestartFailed {
        instance: String,
        error: String,
        retry_in_ms: u64,
    },
}

pub trait Backend: Send + Sync {
    /// `"process"`, `"static"`, ...
    fn kind(&self) -> &'static str;

    /// Starts (or adopts, when already running) `spec.instances` instances of a
    /// version and waits until all are ready. On failure nothing of that version is
    /// left running.
    fn start(&self, spec: VersionSpec) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>>;

    /// Changes a running version's instance count; returns the new set once the added
    /// instances are ready.
    fn scale(
        &self,
        version: &str,
        instances: u32,
    ) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>>;

    /// Stops a version. Stopping a version that does not run is not an error, so a
    /// controller can repeat it after a crash.
    fn stop(&self, version: &str) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The version's instances, in index order; empty when it does not run.
    fn instances(&self, version: &str) -> Vec<Instance>;

    /// Versions that run, sorted.
    fn versions(&self) -> Vec<String>;

    /// Instance-set changes (crash, restart on the same address, scale), so the router
    /// can be updated. A lagging receiver should re-read [`Backend::instances`].
    fn subscribe(&self) -> broadcast::Receiver<BackendEvent>;

    /// Stops everything (rampart is exiting), or leaves it running for the next
    /// rampart to re-adopt when instances outlive rampart. Later `start` calls fail.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Stops everything whatever `instances_outlive` says (a config reload removed
    /// the service, or undoes the start of one it was adding). Later `start` calls
    /// fail.
    fn stop_all(&self) -> BoxFuture<'_, ()> {
        self.shutdown()
    }

    /// While `true`, crashed instances are not restarted: another rampart is taking
    /// over (graceful upgrade) and would restart them too. `false` resumes (the
    /// handover failed); restarts that waited happen then.
    fn hold_restarts(&self, _held: bool) {}

    /// Stops supervising without stopping anything: a new rampart re-adopts the
    /// instances (graceful upgrade). Later `start` calls fail.
    fn hand_over(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// After start-up re-adoption: recorded instances of versions not in `wanted`
    /// (left by a previous rampart, claimed by no deployment) are stopped.
    fn stop_unwanted<'a>(&'a self, _wanted: &'a [String]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
