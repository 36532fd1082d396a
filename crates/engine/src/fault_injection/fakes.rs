//! A backend and a routing writer whose faults a test switches on and off, a clock
//! that follows tokio's (paused) time, and an engine built from them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_backends::{
    Backend, BackendError, BackendEvent, BackendEventKind, BoxFuture, Instance, InstanceState,
    VersionSpec,
};
use rampart_config::Config;
use rampart_core::{Clock, Timestamp};
use rampart_router::{RouteTable, ServiceHandle};
use rampart_store::Store;
use tokio::sync::broadcast;

use crate::engine::{Engine, Parts};
use crate::error::EngineError;
use crate::routes::RouteWriter;
use crate::{DeployRequest, DeploymentSummary};

pub const SERVICE: &str = "shop";

/// Wall time that moves with tokio's clock, so deadlines pass under paused time.
pub struct TokioClock {
    wall_at_start: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            wall_at_start: 1_800_000_000_000,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.wall_at_start + self.start.elapsed().as_millis() as u64)
    }
}

/// Per-version faults of the fake backend.
#[derive(Default)]
pub struct Faults {
    /// `start` of these versions never returns.
    pub hang_start: BTreeSet<String>,
    /// The next this many `start`s of a version panic.
    pub panic_start: BTreeMap<String, u32>,
    /// The next this many `scale`s (of any version) panic.
    pub panic_scale: u32,
    /// The next this many `stop`s fail.
    pub fail_stop: u32,
    /// `start` waits for this before it starts anything.
    pub start_gate: Option<Arc<tokio::sync::Notify>>,
    /// The next this many looks at a version's instances panic (the controller looks
    /// at the canary's every tick while it takes traffic).
    pub panic_instances: BTreeMap<String, u32>,
}

/// Runs "instances" as entries in a map: ready at once, on made-up loopback ports.
pub struct FakeBackend {
    running: Mutex<BTreeMap<String, Vec<Instance>>>,
    events: broadcast::Sender<BackendEvent>,
    pub faults: Mutex<Faults>,
    /// Versions whose `stop` succeeded, in order.
    pub stopped: Mutex<Vec<String>>,
    next_port: AtomicU16,
}

impl FakeBackend {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(BTreeMap::new()),
            events: broadcast::channel(64).0,
            faults: Mutex::new(Faults::default()),
            stopped: Mutex::new(Vec::new()),
            next_port: AtomicU16::new(41_000),
        })
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults")
    }

    pub fn runs(&self, version: &str) -> bool {
        !self.instances(version).is_empty()
    }

    pub fn stopped(&self) -> Vec<String> {
        self.stopped.lock().expect("stopped").clone()
    }

    fn launch(&self, version: &str, count: u32) -> Vec<Instance> {
        (0..count)
            .map(|index| Instance {
                id: format!("{version}-{index}"),
                version: version.to_string(),
                addr: SocketAddr::from((
                    [127, 0, 0, 1],
                    self.next_port.fetch_add(1, Ordering::Relaxed),
                )),
                state: InstanceState::Ready,
                pid: None,
                restarts: 0,
            })
            .collect()
    }

    fn take_panic(counter: &mut u32) -> bool {
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }
}

impl Backend for FakeBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn start(&self, spec: VersionSpec) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        Box::pin(async move {
            let gate = self.faults().start_gate.clone();
            if let Some(gate) = gate {
                gate.notified().await;
            }
            let (hang, panic) = {
                let mut faults = self.faults();
                let hang = faults.hang_start.contains(&spec.version);
                let panic = faults
                    .panic_start
                    .get_mut(&spec.version)
                    .is_some_and(Self::take_panic);
                (hang, panic)
            };
            if hang {
                std::future::pending::<()>().await;
            }
            if panic {
                panic!("injected: start of {} panicked", spec.version);
            }
            let mut running = self.running.lock().expect("running");
            let instances = running
                .entry(spec.version.clone())
                .or_insert_with(|| self.launch(&spec.version, spec.instances))
                .clone();
            drop(running);
            let _ = self.events.send(BackendEvent {
                version: spec.version,
                kind: BackendEventKind::Started,
                instances: instances.clone(),
            });
            Ok(instances)
        })
    }

    fn scale(
        &self,
        version: &str,
        instances: u32,
    ) -> BoxFuture<'_, Result<Vec<Instance>, BackendError>> {
        let version = version.to_string();
        Box::pin(async move {
            if Self::take_panic(&mut self.faults().panic_scale) {
                panic!("injected: scaling {version} panicked");
            }
            let mut running = self.running.lock().expect("running");
            let Some(current) = running.get_mut(&version) else {
                return Err(BackendError::UnknownVersion { version });
            };
            let have = current.len() as u32;
            if instances > have {
                current.extend(self.launch(&version, instances - have));
            } else {
                current.truncate(instances as usize);
            }
            Ok(current.clone())
        })
    }

    fn stop(&self, version: &str) -> BoxFuture<'_, Result<(), BackendError>> {
        let version = version.to_string();
        Box::pin(async move {
            if Self::take_panic(&mut self.faults().fail_stop) {
                return Err(BackendError::InvalidSpec {
                    version,
                    reason: "injected: stop failed".into(),
                });
            }
            self.running.lock().expect("running").remove(&version);
            self.stopped.lock().expect("stopped").push(version.clone());
            let _ = self.events.send(BackendEvent {
                version,
                kind: BackendEventKind::Stopped,
                instances: Vec::new(),
            });
            Ok(())
        })
    }

    fn instances(&self, version: &str) -> Vec<Instance> {
        let panic = self
            .faults()
            .panic_instances
            .get_mut(version)
            .is_some_and(Self::take_panic);
        if panic {
            panic!("injected: looking at {version}'s instances panicked");
        }
        self.running
            .lock()
            .expect("running")
            .get(version)
            .cloned()
            .unwrap_or_default()
    }

    fn versions(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("running")
            .keys()
            .cloned()
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<BackendEvent> {
        self.events.subscribe()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The router's own table, refusing changes while `refusing` is non-zero (each refusal
/// counts down; `u32::MAX` refuses until told otherwise).
pub struct FlakyRoutes {
    inner: ServiceHandle,
    pub refusing: AtomicU32,
    pub refused: AtomicU32,
}

impl FlakyRoutes {
    pub fn refuse(&self, times: u32) {
        self.refusing.store(times, Ordering::SeqCst);
    }
}

impl RouteWriter for FlakyRoutes {
    fn table(&self) -> RouteTable {
        self.inner.table()
    }

    fn apply(&self, table: RouteTable) -> Result<Vec<SocketAddr>, EngineError> {
        let left = self.refusing.load(Ordering::SeqCst);
        if left > 0 {
            if left != u32::MAX {
                self.refusing.store(left - 1, Ordering::SeqCst);
            }
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(EngineError::Internal(
                "injected: the router refused the table".into(),
            ));
        }
        self.inner.apply(table)
    }
}

pub struct Harness {
    pub engine: Engine,
    pub backend: Arc<FakeBackend>,
    pub routes: Arc<FlakyRoutes>,
    pub store: Store,
    pub _dir: tempfile::TempDir,
}

/// One process-backed service `shop` (v1 stable, 2 instances) on the fakes. Steps
/// 20 % and 50 % of 2 s each; deadlines: start and promotion 30 s, rollback 40 s
/// (the drain grace of 1 s plus the stop margin is less).
pub async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"

[[service]]
name = "{SERVICE}"
listen = "127.0.0.1:0"

[service.backend]
kind = "process"
command = "unused --port {{port}}"
instances = 2

[service.strategy]
steps = [{{ weight = 20, hold = "2s" }}, {{ weight = 50, hold = "2s" }}]
scale_down_delay = "5s"
progress_deadline = "10m"
start_deadline = "30s"
promotion_deadline = "30s"
rollback_deadline = "40s"

[service.router]
drain_grace = "1s"
"#,
        data = data.display()
    );
    let config: Config = rampart_config::parse(&toml, "test.toml").expect("valid config");
    let store = Store::open(&data).expect("store");
    let backend = FakeBackend::new();
    let routes_slot: Arc<Mutex<Option<Arc<FlakyRoutes>>>> = Arc::default();
    let parts = {
        let backend = backend.clone();
        let slot = routes_slot.clone();
        Parts {
            backend: Box::new(move |_, _: &Path| Ok(backend.clone() as Arc<dyn Backend>)),
            routes: Box::new(move |handle| {
                let routes = Arc::new(FlakyRoutes {
                    inner: handle,
                    refusing: AtomicU32::new(0),
                    refused: AtomicU32::new(0),
                });
                *slot.lock().expect("slot") = Some(routes.clone());
                routes as Arc<dyn RouteWriter>
            }),
            resolver: crate::resolve::system(),
        }
    };
    let engine = Engine::start_with(
        &config,
        store.clone(),
        Arc::new(TokioClock::new()),
        dir.path().to_path_buf(),
        parts,
    )
    .await
    .expect("engine starts");
    let routes = routes_slot
        .lock()
        .expect("slot")
        .clone()
        .expect("routes made");
    Harness {
        engine,
        backend,
        routes,
        store,
        _dir: dir,
    }
}

impl Harness {
    pub async fn deploy(&self, version: &str) -> Result<DeploymentSummary, EngineError> {
        let request = DeployRequest {
            version: version.to_string(),
            ..DeployRequest::default()
        };
        self.engine.deploy(SERVICE, request, "alice").await
    }

    pub async fn state(&self, id: &str) -> String {
        self.engine
            .deployment(id)
            .await
            .expect("deployment")
            .summary
            .state
    }

    /// Waits (in tokio time) until deployment `id` is in `state`; panics with its
    /// history after `limit`.
    pub async fn wait_state(&self, id: &str, state: &str, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        loop {
            if self.state(id).await == state {
                return;
            }
            if tokio::time::Instant::now() >= end {
                let detail = self.engine.deployment(id).await.expect("deployment");
                let history: Vec<String> = detail
                    .record
                    .rollout
                    .history
                    .iter()
                    .map(|t| format!("{} -> {}: {}", t.from.name(), t.to.name(), t.reason))
                    .collect();
                panic!(
                    "deployment {id} is {}, not {state}, after {limit:?}:\n{}",
                    detail.summary.state,
                    history.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last transition's reason.
    pub async fn last_reason(&self, id: &str) -> String {
        let detail = self.engine.deployment(id).await.expect("deployment");
        detail
            .record
            .rollout
            .history
            .last()
            .map(|t| t.reason.clone())
            .unwrap_or_default()
    }

    pub fn table(&self) -> RouteTable {
        self.routes.table()
    }

    /// Waits until `check` holds for the routing table.
    pub async fn wait_table(&self, what: &str, check: impl Fn(&RouteTable) -> bool) {
        for _ in 0..600 {
            if check(&self.table()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: the table is {:?}", self.table());
    }

    pub async fn wait_until(&self, what: &str, check: impl Fn() -> bool) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}");
    }
}
