//! One routed service: its live routing table and the handle the engine and API use
//! to change it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderName;
use rampart_config::RouterConfig;
use rampart_core::rollout::Steering;
use rampart_core::{Clock, Timestamp, WindowSample};
use tokio::sync::watch;

use crate::connection::ConnectionLimit;
use crate::error::RouterError;
use crate::limit::ConcurrencyLimit;
use crate::metrics::arrivals::Arrivals;
use crate::metrics::counters::{Counts, SetCounters};
use crate::metrics::status_class;
use crate::metrics::window::{SetWindow, SetWindows};
use crate::mirror::Mirror;
use crate::split::{Splitter, canary_step};
use crate::status::{InstanceStatus, MirrorStatus, RequestCounts, SetStatus, TrafficStatus};
use crate::steering::CanaryMatch;
use crate::sticky::CookieSigner;
use crate::table::{ActiveSet, ActiveTable, Assignment, RouteTable, SetKind, UpstreamSet};
use crate::upstream::{DrainReport, Upstream};

/// What [`crate::Router::start`] needs to route one service.
#[derive(Debug, Clone)]
pub struct ServiceRoute {
    pub name: String,
    /// Port 0 picks a free port; [`ServiceHandle::listen_addr`] tells which.
    pub listen: SocketAddr,
    pub settings: RouterConfig,
    pub stable: UpstreamSet,
    pub canary: Option<UpstreamSet>,
    pub canary_weight: f64,
    /// Certificate and key when the listener terminates TLS (HTTP/1.1 and h2 by ALPN).
    pub tls: Option<rampart_config::TlsConfig>,
}

/// Both sets over one window, with responses by status class.
///
/// `stable` and `canary` hold only the requests the split assigned: the judge's
/// evidence. Requests whose client picked the set (the version header) are in
/// `chosen_by_client` and never in the judged sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowDetail {
    pub start: Timestamp,
    pub end: Timestamp,
    pub stable: SetWindow,
    pub canary: SetWindow,
    pub chosen_by_client: ChosenByClient,
}

/// Requests whose client picked the set, per set, over the same window.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChosenByClient {
    pub stable: SetWindow,
    pub canary: SetWindow,
}

impl From<WindowDetail> for WindowSample {
    fn from(d: WindowDetail) -> Self {
        WindowSample {
            start: d.start,
            end: d.end,
            stable: d.stable.sample,
            canary: d.canary.sample,
        }
    }
}

/// Changed only under `ServiceState::writer`.
#[derive(Debug, Default)]
struct Bookkeeping {
    /// Removed instances, draining or drained, by address.
    removed: HashMap<SocketAddr, Arc<Upstream>>,
    /// Cumulative counters per (set, version, who assigned): a new version starts
    /// new series.
    counters: HashMap<(SetKind, String, Assignment), Arc<SetCounters>>,
}

/// The router settings as the data plane reads them, swapped whole on a reload.
#[derive(Debug)]
pub(crate) struct LiveSettings {
    pub(crate) config: RouterConfig,
    /// The header with which a client picks its set, when the config turns it on.
    pub(crate) version_header: Option<HeaderName>,
}

impl LiveSettings {
    fn of(config: RouterConfig) -> Self {
        let version_header = config
            .version_header
            .as_deref()
            .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok());
        Self {
            config,
            version_header,
        }
    }
}

pub(crate) struct ServiceState {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    /// Read per request and per connection, so a reload changes what the next
    /// request and connection get; those in flight keep what they started with.
    pub(crate) settings: ArcSwap<LiveSettings>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) table: ArcSwap<ActiveTable>,
    writer: Mutex<Bookkeeping>,
    /// One block sequence for the whole service, shared by the workers (one
    /// compare-and-swap per request): per-worker blocks would make the shares exact
    /// only per worker, and any N×100 requests of the service would no longer hold
    /// exactly their share (`split.rs`).
    pub(crate) splitter: Splitter,
    pub(crate) limit: Arc<ConcurrencyLimit>,
    pub(crate) connection_limit: Arc<ConnectionLimit>,
    outlier_enabled: AtomicBool,
    outlier_threshold: AtomicU32,
    metrics_enabled: AtomicBool,
    stable_window: SetWindows,
    canary_window: SetWindows,
    /// Client-chosen requests; allocated on the first one (the header is off by
    /// default, and a ring is a few MB).
    client_stable_window: OnceLock<SetWindows>,
    client_canary_window: OnceLock<SetWindows>,
    /// Requests per set by the second they arrived (all of them, split or chosen by
    /// the client): the demand the autoscaler sizes for.
    stable_arrivals: Arrivals,
    canary_arrivals: Arrivals,
    pub(crate) cookies: CookieSigner,
    pub(crate) mirror: Mirror,
    /// Data-plane threads; every instance keeps an idle-connection slot per worker.
    workers: usize,
    runtime: tokio::runtime::Handle,
    /// The worker threads' runtimes, by worker index, once they exist: new instances
    /// get connections opened on each.
    worker_runtimes: OnceLock<Vec<tokio::runtime::Handle>>,
    /// Flips to true when the service stops being routed for good (the router stops,
    /// or a reload removed the service); upgraded tunnels close on it.
    pub(crate) closing: watch::Sender<bool>,
    /// Set when the listener terminates TLS; its certificate reloads in place.
    pub(crate) tls: Option<crate::tls::TlsAcceptor>,
    /// Another rampart accepts on the same sockets (graceful upgrade): HTTP/1
    /// responses say `Connection: close`, so keep-alive clients move over between
    /// two requests instead of finding their idle connection closed under them.
    pub(crate) handing_off: AtomicBool,
}

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Removed instances kept for status and `wait_drained` before drained ones are
/// forgotten.
const MAX_REMOVED_KEPT: usize = 256;

/// The outlier threshold used when detection is switched on at run time although
/// the config disabled it (0).
const DEFAULT_OUTLIER_THRESHOLD: u32 = 5;

impl ServiceState {
    pub(crate) fn new(
        route: ServiceRoute,
        listen: SocketAddr,
        clock: Arc<dyn Clock>,
        workers: usize,
    ) -> Result<Arc<Self>, RouterError> {
        check_weight(route.canary_weight)?;
        let mut books = Bookkeeping::default();
        let generation = clock.now().as_millis();
        let table = build_table(
            &mut books,
            workers,
            None,
            generation,
            RouteTable {
                stable: route.stable,
                canary: route.canary,
                canary_weight: route.canary_weight,
                steering: Steering::default(),
            },
        );
        let tls = match &route.tls {
            None => None,
            Some(files) => {
                let owner = format!("service `{}`", route.name);
                let tls_error = |problem: String| RouterError::Tls {
                    service: route.name.clone(),
                    problem,
                };
                let cert = crate::tls::ReloadableCert::load(owner, files)
                    .map_err(|e| tls_error(e.to_string()))?;
                Some(cert.acceptor().map_err(|e| tls_error(e.to_string()))?)
            }
        };
        let threshold = route.settings.outlier_consecutive_failures;
        let mirror = Mirror::new(&route.settings);
        Ok(Arc::new(Self {
            name: route.name,
            mirror,
            listen,
            limit: ConcurrencyLimit::new(route.settings.max_concurrency, workers),
            connection_limit: ConnectionLimit::new(route.settings.max_connections_per_client),
            outlier_enabled: AtomicBool::new(threshold > 0),
            outlier_threshold: AtomicU32::new(if threshold > 0 {
                threshold
            } else {
                DEFAULT_OUTLIER_THRESHOLD
            }),
            settings: ArcSwap::from_pointee(LiveSettings::of(route.settings)),
            clock,
            table: ArcSwap::from_pointee(table),
            writer: Mutex::new(books),
            splitter: Splitter::default(),
            metrics_enabled: AtomicBool::new(true),
            stable_window: SetWindows::new(workers),
            canary_window: SetWindows::new(workers),
            client_stable_window: OnceLock::new(),
            client_canary_window: OnceLock::new(),
            stable_arrivals: Arrivals::new(workers),
            canary_arrivals: Arrivals::new(workers),
            cookies: CookieSigner::default(),
            workers,
            runtime: tokio::runtime::Handle::current(),
            worker_runtimes: OnceLock::new(),
            closing: watch::channel(false).0,
            tls,
            handing_off: AtomicBool::new(false),
        }))
    }

    fn books(&self) -> MutexGuard<'_, Bookkeeping> {
        // The bookkeeping stays consistent even if a holder panicked: every change
        // to it is a single insert or retain.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_worker_runtimes(&self, runtimes: Vec<tokio::runtime::Handle>) {
        let _ = self.worker_runtimes.set(runtimes);
    }

    /// Opens a few pooled connections from every worker to instances that just joined
    /// the table, so a new canary starts as warm as the stable set it is compared with.
    fn warm(&self, instances: &[Arc<Upstream>]) {
        let Some(runtimes) = self.worker_runtimes.get() else {
            return;
        };
        let timeout = self.settings.load().config.connect_timeout.get();
        for upstream in instances {
            for (worker, runtime) in runtimes.iter().enumerate() {
                runtime.spawn(crate::pool::warm(Arc::clone(upstream), worker, timeout));
            }
        }
    }

    pub(crate) fn metrics_enabled(&self) -> bool {
        self.metrics_enabled.load(Ordering::Relaxed)
    }

    /// Whether a request from `client` may pick its set with the version header.
    pub(crate) fn may_pick_version(&self, client: std::net::IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let client = client.to_canonical();
        self.settings
            .load()
            .config
            .version_header_from
            .iter()
            .any(|network| network.contains(&client))
    }

    /// Records one finished request against set `kind` (whose counters for
    /// `assignment` are `counters`), apart by who assigned it.
    pub(crate) fn record(
        &self,
        kind: SetKind,
        assignment: Assignment,
        counters: &Counts,
        status: u16,
        error: bool,
        latency_us: u64,
    ) {
        if !self.metrics_enabled() {
            return;
        }
        let class = status_class(status);
        counters.record(class, error, latency_us);
        let second = self.clock.now().as_secs();
        self.window_ring(kind, assignment)
            .record(second, class, error, latency_us);
    }

    /// Counts a request assigned to set `kind`, in the second it arrived.
    pub(crate) fn arrived(&self, kind: SetKind) {
        if !self.metrics_enabled() {
            return;
        }
        let second = self.clock.now().as_secs();
        match kind {
            SetKind::Stable => self.stable_arrivals.record(second),
            SetKind::Canary => self.canary_arrivals.record(second),
        }
    }

    fn window_ring(&self, kind: SetKind, assignment: Assignment) -> &SetWindows {
        match (kind, assignment) {
            (SetKind::Stable, Assignment::Split) => &self.stable_window,
            // Matched and mirrored requests are the canary's evidence too: the judge
            // sees every request the canary served for the rollout, not only the
            // split's (a match or mirror step may send it nothing else).
            (SetKind::Canary, Assignment::Split | Assignment::Matched | Assignment::Mirrored) => {
                &self.canary_window
            }
            // Never assigned: matches and mirrors go to the canary.
            (SetKind::Stable, Assignment::Matched | Assignment::Mirrored) => &self.stable_window,
            (SetKind::Stable, Assignment::Client) => self
                .client_stable_window
                .get_or_init(|| SetWindows::new(self.workers)),
            (SetKind::Canary, Assignment::Client) => self
                .client_canary_window
                .get_or_init(|| SetWindows::new(self.workers)),
        }
    }

    /// Outlier detection after a 5xx, connect failure or timeout from `upstream`.
    pub(crate) fn upstream_failed(&self, set: &ActiveSet, upstream: &Upstream, now_ms: u64) {
        let failures = upstream.record_failure();
        if !self.outlier_enabled.load(Ordering::Relaxed)
            || failures < self.outlier_threshold.load(Ordering::Relaxed)
        {
            return;
        }
        // Never eject the last instance of a set that can still take traffic.
        let another_available = set
            .instances
            .iter()
            .any(|u| u.addr != upstream.addr && u.is_available(now_ms));
        if another_available {
            upstream.eject(
                now_ms,
                self.settings.load().config.outlier_base_ejection.get(),
            );
            tracing::warn!(
                service = %self.name,
                set = set.kind.as_str(),
                instance = %upstream.addr,
                failures,
                "instance ejected by outlier detection"
            );
        }
    }

    /// Changes the table under the writer lock (so concurrent changes never undo each
    /// other); instances that left the table start draining. Returns their addresses.
    /// When `change` fails nothing changes.
    fn update<E>(
        &self,
        change: impl FnOnce(&mut RouteTable) -> Result<(), E>,
    ) -> Result<Vec<SocketAddr>, E> {
        let mut books = self.books();
        let current = self.table.load_full();
        let mut wanted = current.to_public();
        change(&mut wanted)?;
        let generation = next_generation(
            &current,
            &wanted.stable,
            wanted.canary.as_ref(),
            self.clock.now(),
        );
        let next = build_table(&mut books, self.workers, Some(&current), generation, wanted);
        let removed: Vec<Arc<Upstream>> = current
            .stable
            .instances
            .iter()
            .chain(current.canary.iter().flat_map(|c| c.instances.iter()))
            .filter(|u| !next.contains(u.addr))
            .cloned()
            .collect();
        let joined: Vec<Arc<Upstream>> = next
            .stable
            .instances
            .iter()
            .chain(next.canary.iter().flat_map(|c| c.instances.iter()))
            .filter(|u| !current.contains(u.addr))
            .cloned()
            .collect();
        self.table.store(Arc::new(next));
        self.warm(&joined);
        if books.removed.len() + removed.len() > MAX_REMOVED_KEPT {
            // Bound the history: forget instances whose drain is over.
            books.removed.retain(|_, u| u.drain_report().is_none());
        }
        let grace = self.settings.load().config.drain_grace.get();
        let mut addrs = Vec::with_capacity(removed.len());
        for upstream in removed {
            upstream.start_draining();
            addrs.push(upstream.addr);
            books.removed.insert(upstream.addr, Arc::clone(&upstream));
            self.runtime.spawn(upstream.drain(grace));
        }
        Ok(addrs)
    }
}

fn check_weight(weight: f64) -> Result<(), RouterError> {
    if weight.is_finite() && (0.0..=100.0).contains(&weight) {
        Ok(())
    } else {
        Err(RouterError::InvalidWeight(weight))
    }
}

fn check_steering(steering: &Steering) -> Result<(), RouterError> {
    let mirror = steering.mirror_percent;
    if !(mirror.is_finite() && (0.0..=100.0).contains(&mirror)) {
        return Err(RouterError::InvalidMirror(mirror));
    }
    if let Some(rule) = &steering.canary_match
        && CanaryMatch::compile(rule).is_none()
    {
        return Err(RouterError::InvalidMatch(rule.name.clone()));
    }
    Ok(())
}

fn next_generation(
    current: &ActiveTable,
    stable: &UpstreamSet,
    canary: Option<&UpstreamSet>,
    now: Timestamp,
) -> u64 {
    let same_versions = current.stable.version == stable.version
        && current.canary.as_ref().map(|c| &c.version) == canary.map(|c| &c.version);
    if same_versions {
        current.generation
    } else {
        // Monotonic within a process, and unlikely to repeat one of an earlier process.
        (current.generation + 1).max(now.as_millis())
    }
}

fn build_table(
    books: &mut Bookkeeping,
    workers: usize,
    current: Option<&ActiveTable>,
    generation: u64,
    wanted: RouteTable,
) -> ActiveTable {
    let RouteTable {
        stable,
        canary,
        canary_weight: weight,
        steering,
    } = wanted;
    let mut existing: HashMap<SocketAddr, Arc<Upstream>> = HashMap::new();
    if let Some(table) = current {
        for u in table
            .stable
            .instances
            .iter()
            .chain(table.canary.iter().flat_map(|c| c.instances.iter()))
        {
            existing.insert(u.addr, Arc::clone(u));
        }
    }
    let mut resolve = |kind: SetKind, set: UpstreamSet| {
        let mut instances: Vec<Arc<Upstream>> = Vec::with_capacity(set.instances.len());
        for addr in set.instances {
            if instances.iter().any(|u| u.addr == addr) {
                continue;
            }
            // A drained instance that comes back starts afresh; one still draining
            // keeps reporting its own drain.
            if books
                .removed
                .get(&addr)
                .is_some_and(|u| u.drain_report().is_some())
            {
                books.removed.remove(&addr);
            }
            let upstream = existing
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| Upstream::with_workers(addr, workers));
            instances.push(upstream);
        }
        let mut counters = |assignment| {
            Arc::clone(
                books
                    .counters
                    .entry((kind, set.version.clone(), assignment))
                    .or_insert_with(|| Arc::new(SetCounters::new(workers))),
            )
        };
        let split = counters(Assignment::Split);
        let client = counters(Assignment::Client);
        let matched = counters(Assignment::Matched);
        let mirrored = counters(Assignment::Mirrored);
        ActiveSet {
            kind,
            version: set.version,
            instances,
            counters: split,
            client_counters: client,
            matched_counters: matched,
            mirrored_counters: mirrored,
        }
    };
    let stable = resolve(SetKind::Stable, stable);
    let canary = canary.map(|c| resolve(SetKind::Canary, c));
    books.counters.retain(|(kind, version, _), _| match kind {
        SetKind::Stable => *version == stable.version,
        SetKind::Canary => canary.as_ref().is_some_and(|c| c.version == *version),
    });
    let weight = if canary.is_some() { weight } else { 0.0 };
    // Without a canary there is nothing to match to or mirror to.
    let steering = if canary.is_some() {
        steering
    } else {
        Steering::default()
    };
    ActiveTable {
        generation,
        canary_weight: weight,
        canary_step: canary_step(weight),
        canary_match: steering
            .canary_match
            .as_ref()
            .and_then(CanaryMatch::compile),
        mirror_step: canary_step(steering.mirror_percent),
        steering,
        stable,
        canary,
    }
}

/// A cheap, cloneable handle to one service's routing, for the engine and the API.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    pub(crate) state: Arc<ServiceState>,
}

impl ServiceHandle {
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The address the service's listener is bound to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.state.listen
    }

    /// The current table, as the engine would hand it in.
    pub fn table(&self) -> RouteTable {
        self.state.table.load().to_public()
    }

    /// Sets the canary's header or cookie match and mirrored share, keeping the weight.
    pub fn set_steering(&self, steering: Steering) -> Result<(), RouterError> {
        check_steering(&steering)?;
        self.state.update(|table| {
            table.steering = steering;
            Ok::<(), RouterError>(())
        })?;
        Ok(())
    }

    /// Sets the canary's share of traffic, in percent (0..=100, fractions allowed).
    /// Without a canary set the weight stays 0.
    pub fn set_weight(&self, canary_percent: f64) -> Result<(), RouterError> {
        check_weight(canary_percent)?;
        self.state.update(|table| {
            table.canary_weight = canary_percent;
            Ok::<(), RouterError>(())
        })?;
        Ok(())
    }

    /// Replaces (or removes) the canary set, keeping the weight. Returns the
    /// instances that left the table and are now draining.
    pub fn set_canary(&self, set: Option<UpstreamSet>) -> Vec<SocketAddr> {
        self.infallible_update(|table| table.canary = set)
    }

    /// Replaces the stable set. Returns the instances now draining.
    pub fn set_stable(&self, set: UpstreamSet) -> Vec<SocketAddr> {
        self.infallible_update(|table| table.stable = set)
    }

    fn infallible_update(&self, change: impl FnOnce(&mut RouteTable)) -> Vec<SocketAddr> {
        let result = self.state.update(|table| {
            change(table);
            Ok::<(), std::convert::Infallible>(())
        });
        match result {
            Ok(addrs) => addrs,
            Err(never) => match never {},
        }
    }

    /// Replaces the whole table at once: the next request sees it, requests in flight
    /// finish where they were sent. Returns the instances now draining.
    pub fn swap(&self, table: RouteTable) -> Result<Vec<SocketAddr>, RouterError> {
        check_weight(table.canary_weight)?;
        check_steering(&table.steering)?;
        self.state.update(|current| {
            *current = table;
            Ok(())
        })
    }

    /// Takes instances out of whichever set holds them; they get no new requests and
    /// drain. Removing the last stable instance is refused; nothing changes then.
    pub fn remove_instances(&self, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, RouterError> {
        let service = &self.state.name;
        self.state.update(|table| {
            for &addr in addrs {
                let in_stable = table.stable.instances.contains(&addr);
                let in_canary = table
                    .canary
                    .as_ref()
                    .is_some_and(|c| c.instances.contains(&addr));
                if !in_stable && !in_canary {
                    return Err(RouterError::UnknownInstance {
                        service: service.clone(),
                        addr,
                    });
                }
                table.stable.instances.retain(|a| *a != addr);
                if let Some(canary) = table.canary.as_mut() {
                    canary.instances.retain(|a| *a != addr);
                }
                if in_stable && table.stable.instances.is_empty() {
                    return Err(RouterError::LastStableInstance {
                        service: service.clone(),
                        addr,
                    });
                }
            }
            Ok(())
        })
    }

    /// Resolves when a removed instance has drained: its in-flight requests finished,
    /// or the drain grace ran out (the report says which).
    pub async fn wait_drained(&self, addr: SocketAddr) -> Result<DrainReport, RouterError> {
        let upstream = self.state.books().removed.get(&addr).cloned();
        match upstream {
            Some(upstream) => Ok(upstream.drained().await),
            None if self.state.table.load().contains(addr) => Err(RouterError::NotDraining {
                service: self.state.name.clone(),
                addr,
            }),
            None => Err(RouterError::UnknownInstance {
                service: self.state.name.clone(),
                addr,
            }),
        }
    }

    /// Removes instances and waits until all of them have drained.
    pub async fn drain(&self, addrs: &[SocketAddr]) -> Result<Vec<DrainReport>, RouterError> {
        let removed = self.remove_instances(addrs)?;
        let mut reports = Vec::with_capacity(removed.len());
        for addr in removed {
            reports.push(self.wait_drained(addr).await?);
        }
        Ok(reports)
    }

    pub fn status(&self) -> TrafficStatus {
        let state = &self.state;
        let now_ms = state.clock.now().as_millis();
        let table = state.table.load();
        let instance = |u: &Arc<Upstream>| InstanceStatus {
            addr: u.addr,
            state: u.state(now_ms),
            in_flight: u.in_flight(),
            consecutive_failures: u.consecutive_failures(),
            ejected_until: u.ejected_until(now_ms),
            drain: u.drain_report(),
        };
        let set = |s: &ActiveSet| SetStatus {
            version: s.version.clone(),
            instances: s.instances.iter().map(instance).collect(),
            split: RequestCounts::of(&s.counters),
            chosen_by_client: RequestCounts::of(&s.client_counters),
            matched: RequestCounts::of(&s.matched_counters),
            mirrored: RequestCounts::of(&s.mirrored_counters),
        };
        let mut removed: Vec<InstanceStatus> =
            state.books().removed.values().map(instance).collect();
        removed.sort_by_key(|i| i.addr);
        TrafficStatus {
            service: state.name.clone(),
            listen: state.listen,
            generation: table.generation,
            canary_weight: table.canary_weight,
            steering: table.steering.clone(),
            mirror: MirrorStatus::of(state.mirror.counts()),
            stable: set(&table.stable),
            canary: table.canary.as_ref().map(set),
            removed,
            in_flight: state.limit.in_flight(),
            max_concurrency: state.limit.get(),
            outlier_detection: state.outlier_enabled.load(Ordering::Relaxed),
            metrics_enabled: state.metrics_enabled(),
        }
    }

    /// Canary and stable over the last `last` (whole seconds, the current one
    /// included), up to the ring's 640 s: only the requests the split assigned.
    pub fn window(&self, last: Duration) -> WindowSample {
        self.window_detail(last).into()
    }

    /// Canary and stable over the seconds that overlap `[start, end)`: only the
    /// requests the split assigned, which is what the judge compares.
    pub fn window_between(&self, start: Timestamp, end: Timestamp) -> WindowSample {
        self.window_detail_between(start, end).into()
    }

    /// Like [`ServiceHandle::window`], with responses by status class.
    pub fn window_detail(&self, last: Duration) -> WindowDetail {
        let now = self.state.clock.now();
        let seconds = last.as_millis().div_ceil(1000).max(1) as u64;
        let last_second = now.as_secs();
        let first_second = (last_second + 1).saturating_sub(seconds);
        self.sum_seconds(
            first_second,
            last_second,
            Timestamp(first_second * 1000),
            now,
        )
    }

    /// Like [`ServiceHandle::window_between`], with responses by status class.
    pub fn window_detail_between(&self, start: Timestamp, end: Timestamp) -> WindowDetail {
        if end <= start {
            return WindowDetail {
                start,
                end,
                ..WindowDetail::default()
            };
        }
        let last_second = (end.as_millis() - 1) / 1000;
        self.sum_seconds(start.as_secs(), last_second, start, end)
    }

    fn sum_seconds(&self, first: u64, last: u64, start: Timestamp, end: Timestamp) -> WindowDetail {
        let client = |ring: &OnceLock<SetWindows>| {
            ring.get()
                .map(|ring| ring.sum(first, last))
                .unwrap_or_default()
        };
        WindowDetail {
            start,
            end,
            stable: self.state.stable_window.sum(first, last),
            canary: self.state.canary_window.sum(first, last),
            chosen_by_client: ChosenByClient {
                stable: client(&self.state.client_stable_window),
                canary: client(&self.state.client_canary_window),
            },
        }
    }

    /// Requests that arrived for each set (stable, canary) in the seconds that overlap
    /// `[start, end)`, however long they took or take: a stall moves none of them
    /// (the windows above count requests when they finish).
    pub fn arrivals_between(&self, start: Timestamp, end: Timestamp) -> (u64, u64) {
        if end <= start {
            return (0, 0);
        }
        let (first, last) = (start.as_secs(), (end.as_millis() - 1) / 1000);
        (
            self.state.stable_arrivals.sum(first, last),
            self.state.canary_arrivals.sum(first, last),
        )
    }

    /// Requests in flight above `limit` get 503 with `Retry-After`; `None` lifts it.
    pub fn set_max_concurrency(&self, limit: Option<u32>) {
        self.state.limit.set(limit);
    }

    pub fn set_outlier_detection(&self, enabled: bool) {
        self.state.outlier_enabled.store(enabled, Ordering::Relaxed);
    }

    /// Per-version metrics on or off (off only to measure the router's own cost).
    pub fn set_metrics_enabled(&self, on: bool) {
        self.state.metrics_enabled.store(on, Ordering::Relaxed);
    }

    /// The router settings in force now.
    pub fn settings(&self) -> RouterConfig {
        self.state.settings.load().config.clone()
    }

    /// Puts new router settings in force (a config reload): the next connection and
    /// the next request use them; those in flight finish under the old ones.
    /// Limits an operator or incident action set at run time (concurrency, outlier
    /// detection) are reset to what the settings say only where the settings changed.
    pub fn apply_settings(&self, config: RouterConfig) {
        let state = &self.state;
        let old = state.settings.load_full();
        if old.config == config {
            return;
        }
        if old.config.max_concurrency != config.max_concurrency {
            state.limit.set(config.max_concurrency);
        }
        if old.config.max_connections_per_client != config.max_connections_per_client {
            state
                .connection_limit
                .set(config.max_connections_per_client);
        }
        if old.config.outlier_consecutive_failures != config.outlier_consecutive_failures {
            let threshold = config.outlier_consecutive_failures;
            state
                .outlier_enabled
                .store(threshold > 0, Ordering::Relaxed);
            if threshold > 0 {
                state.outlier_threshold.store(threshold, Ordering::Relaxed);
            }
        }
        state.settings.store(Arc::new(LiveSettings::of(config)));
    }
}
