//! One service at run time: its router handle, its backend, which version is stable,
//! and the rollout in flight (if any).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rampart_backends::{Backend, Instance};
use rampart_config::{BackendConfig, ServiceConfig};
use rampart_router::{ServiceHandle, UpstreamSet};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::record::DeploymentRecord;

/// A version serving (or having served) a service's stable traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingVersion {
    pub version: String,
    /// Static backend: the addresses; process backend: filled from the backend.
    pub addresses: Vec<SocketAddr>,
    /// Process backend: the per-deploy environment this version was deployed with,
    /// given again whenever its instances are started anew (restart, revert).
    pub env: BTreeMap<String, String>,
}

/// A request to the controller of the rollout in flight.
pub enum ControllerRequest {
    Operate {
        input: rampart_core::rollout::Input,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Stop acting without changing the rollout's state (rampart is shutting down).
    Detach,
}

pub struct ActiveRollout {
    pub id: String,
    pub version: String,
    pub requests: mpsc::Sender<ControllerRequest>,
    pub task: JoinHandle<()>,
}

pub struct PendingScaleDown {
    pub version: ServingVersion,
    pub task: JoinHandle<()>,
}

pub struct ServiceRuntime {
    pub config: ServiceConfig,
    pub router: ServiceHandle,
    pub backend: Arc<dyn Backend>,
    pub(crate) state: Mutex<ServiceState>,
    /// The one owner of this service's instance counts (see `scaling`).
    pub(crate) sizing: crate::scaling::Sizing,
}

pub(crate) struct ServiceState {
    pub stable: ServingVersion,
    /// The version a post-promotion rollback returns to.
    pub previous: Option<ServingVersion>,
    pub active: Option<ActiveRollout>,
    pub scale_down: Option<PendingScaleDown>,
    /// The last record the active controller persisted, for status without a store read.
    pub last_record: Option<DeploymentRecord>,
}

impl ServiceRuntime {
    pub fn new(
        config: ServiceConfig,
        router: ServiceHandle,
        backend: Arc<dyn Backend>,
        stable: ServingVersion,
        previous: Option<ServingVersion>,
    ) -> Self {
        Self {
            config,
            router,
            backend,
            state: Mutex::new(ServiceState {
                stable,
                previous,
                active: None,
                scale_down: None,
                last_record: None,
            }),
            sizing: crate::scaling::Sizing::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ServiceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Full size of the service: what the autoscaler or an operator set, else the
    /// configured instance count (process backend).
    pub fn full_instances(&self) -> u32 {
        match &self.config.backend {
            BackendConfig::Process(p) => self.sizing.stable_target().unwrap_or(p.instances),
            BackendConfig::Static(s) => s.stable.len() as u32,
        }
    }

    pub fn is_static(&self) -> bool {
        matches!(self.config.backend, BackendConfig::Static(_))
    }

    pub fn stable(&self) -> ServingVersion {
        self.lock().stable.clone()
    }
}

/// The addresses of the ready instances, or of all of them when none is ready (so
/// traffic flows again as soon as one comes back).
pub fn routable(instances: &[Instance]) -> Vec<SocketAddr> {
    let ready: Vec<SocketAddr> = instances
        .iter()
        .filter(|i| i.is_ready())
        .map(|i| i.addr)
        .collect();
    if ready.is_empty() {
        instances.iter().map(|i| i.addr).collect()
    } else {
        ready
    }
}

pub fn upstream_set(version: &ServingVersion) -> UpstreamSet {
    UpstreamSet::new(version.version.clone(), version.addresses.clone())
}
