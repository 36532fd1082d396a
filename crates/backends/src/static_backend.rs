//! The `static` backend: upstreams that already run. rampart does not own them: it
//! never starts, restarts or stops their processes; `stop` only forgets them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rampart_config::{StaticBackendConfig, UpstreamAddress};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::{
    Backend, BackendError, BackendEvent, BackendEventKind, BoxFuture, Instance, InstanceState,
    VersionSpec,
};

pub struct StaticBackend {
    config: StaticBackendConfig,
    connect_timeout: Duration,
    versions: Mutex<BTreeMap<String, Vec<Instance>>>,
    events: broadcast::Sender<BackendEvent>,
}

impl StaticBackend {
    /// The stable set from the config is known from the start (it runs already);
    /// `connect_timeout` bounds the reachability check of `start`. Host names in the
    /// config must have been resolved into IP addresses already (the engine does so
    /// at start, `rampart_engine`'s `resolve`); a name left in is not an address and
    /// is skipped.
    pub fn new(config: StaticBackendConfig, connect_timeout: Duration) -> Self {
        let mut versions = BTreeMap::new();
        let stable = ip_addresses(&config.stable);
        if !stable.is_empty() {
            versions.insert(
                config.stable_version.clone(),
                instances_of(&config.stable_version, &stable),
            );
        }
        Self {
            config,
            connect_timeout,
            versions: Mutex::new(versions),
            events: broadcast::channel(64).0,
        }
    }

    fn versions_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Instance>>> {
        self.versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Addresses named by the deploy win; otherwise the config's set for that role.
    fn addresses_for(&self, spec: &VersionSpec) -> Result<Vec<SocketAddr>, BackendError> {
        if !spec.addresses.is_empty() {
            return Ok(spec.addresses.clone());
        }
        let stable = ip_addresses(&self.config.stable);
        if spec.version == self.config.stable_version && !stable.is_empty() {
            return Ok(stable);
        }
        let canary = ip_addresses(&self.config.canary);
        if !canary.is_empty() {
            return Ok(canary);
        }
        Err(BackendError::InvalidSpec {
            version: spec.version.clone(),
            reason: "the static backend needs its addresses: name them in the deploy or set `canary` in [service.backend]".into(),
        })
    }

    async fn check_reachable(&self, version: &str, addr: SocketAddr) -> Result<(), BackendError> {
        let unreachable = |reason: String| BackendError::Unreachable {
            version: version.to_string(),
            addr,
            reason,
        };
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(unreachable(err.to_string())),
            Err(_) => Err(unreachable(format!(
                "no connection within {:?}",
                self.connect_timeout
            ))),
        }
    }

    fn emit(&self, version: &str, kind: BackendEventKind, instances: Vec<Instance>) {
        let _ = self.events.send(BackendEvent {
            version: version.to_string(),
            kind,
            instances,
        });
    }
}

fn ip_addresses(addresses: &[UpstreamAddress]) -> Vec<SocketAddr> {
    addresses.iter().filter_map(UpstreamAddress::ip).collect()
}

fn instances_of(version: &str, addresses: &[SocketAddr]) -> Vec<Instance> {
    addresses
        .iter()
        .enumerate()
        .map(|(index, addr)| Instance {
            id: format!("{version}-{index}"),
            version: version.to_string(),
            addr: *addr,
            state: InstanceState::Ready,
            pid: None,
            restarts: 0,
        })
        .collect()
}

impl Backend for StaticBackend {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn start(&self, spec: VersionSpec) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        Box::pin(async move {
            if spec.version.trim().is_empty() {
                return Err(BackendError::InvalidSpec {
                    version: spec.version,
                    reason: "the version label is empty".into(),
                });
            }
            let addresses = self.addresses_for(&spec)?;
            let checks = addresses
                .iter()
                .map(|addr| self.check_reachable(&spec.version, *addr));
            for result in futures_util::future::join_all(checks).await {
                result?;
            }
            let instances = instances_of(&spec.version, &addresses);
            self.versions_map()
                .insert(spec.version.clone(), instances.clone());
            self.emit(&spec.version, BackendEventKind::Started, instances.clone());
            Ok(instances)
        })
    }

    fn scale(
        &self,
        version: &str,
        instances: u32,
    ) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        let current = self.versions_map().get(version).cloned();
        let version = version.to_string();
        Box::pin(async move {
            match current {
                None => Err(BackendError::UnknownVersion { version }),
                Some(set) if set.len() == instances as usize => Ok(set),
                Some(_) => Err(BackendError::Unsupported { action: "scale" }),
            }
        })
    }

    fn stop(&self, version: &str) -> BoxFuture<'_, Result<(), BackendError>> {
        if self.versions_map().remove(version).is_some() {
            self.emit(version, BackendEventKind::Stopped, Vec::new());
        }
        Box::pin(async { Ok(()) })
    }

    fn instances(&self, version: &str) -> Vec<Instance> {
        self.versions_map()
            .get(version)
            .cloned()
            .unwrap_or_default()
    }

    fn versions(&self) -> Vec<String> {
        self.versions_map().keys().cloned().collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<BackendEvent> {
        self.events.subscribe()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // Nothing to stop: these upstreams are not rampart's.
        Box::pin(async {})
    }
}
