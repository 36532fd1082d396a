//! The collection loop: every interval, read the host and each instance's process
//! tree, ask the services for their traffic, keep the latest reading (for `/metrics`
//! and health) and record points into the bounded series (for history).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rampart_core::series::{Point, Retention, SeriesKey, SeriesStore};
use rampart_core::{Clock, Timestamp};
use serde::Serialize;

use crate::host::{HostReader, HostSnapshot};
use crate::process::{ProcessUsage, tree_usage};
use crate::source::{ServiceObservation, ServiceSource};

/// One instance's resource use at the latest collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceUsage {
    pub service: String,
    pub version: String,
    pub instance: String,
    pub state: String,
    pub restarts: u32,
    /// `None` when the instance has no process (static) or it is gone.
    pub usage: Option<ProcessUsage>,
    /// Percent of one core since the previous collection (100 = one core busy).
    pub cpu_percent: Option<f64>,
}

/// The latest collection.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    pub at: Timestamp,
    pub host: HostSnapshot,
    /// Busy percent per core since the previous collection; empty at the first.
    pub cpu_percent: Vec<f64>,
    /// Busy percent of all cores together; `None` at the first collection.
    pub cpu_total_percent: Option<f64>,
    pub services: Vec<ServiceObservation>,
    pub instances: Vec<InstanceUsage>,
    /// How long this collection took (its cost, exported as a metric).
    pub collection_seconds: f64,
    /// CPU seconds every collection so far used (the thread's own CPU time).
    pub collection_cpu_seconds_total: f64,
}

impl Latest {
    /// Used percent of the fullest filesystem, with its mount point.
    pub fn fullest_filesystem(&self) -> Option<(&str, f64)> {
        self.host
            .filesystems
            .iter()
            .filter(|f| f.size_bytes > 0)
            .map(|f| {
                let used = f.size_bytes.saturating_sub(f.free_bytes) as f64;
                let usable = used + f.avail_bytes as f64;
                (
                    f.mountpoint.as_str(),
                    if usable > 0.0 {
                        used * 100.0 / usable
                    } else {
                        0.0
                    },
                )
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn memory_used_percent(&self) -> Option<f64> {
        let m = &self.host.memory;
        (m.total_bytes > 0).then(|| {
            m.total_bytes.saturating_sub(m.available_bytes) as f64 * 100.0 / m.total_bytes as f64
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub retention: Retention,
}

impl Settings {
    pub fn interval(&self) -> Duration {
        self.retention.interval
    }
}

#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    source: Arc<dyn ServiceSource>,
    clock: Arc<dyn Clock>,
    series: Mutex<SeriesStore>,
    latest: Mutex<Option<Arc<Latest>>>,
    state: Mutex<SamplerState>,
    /// Nanoseconds of CPU all collections used.
    cpu_nanos: AtomicU64,
}

/// CPU time of the calling thread: a collection runs on one thread from start to end.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What a collection needs from the previous one to turn counters into rates.
#[derive(Default)]
struct SamplerState {
    reader: HostReader,
    previous: Option<(Timestamp, HostSnapshot)>,
    /// instance id → (time, CPU seconds of its tree).
    instance_cpu: HashMap<String, (Timestamp, f64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One series' points, for the telemetry API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    pub key: SeriesKey,
    pub points: Vec<Point>,
}

impl Telemetry {
    pub fn new(settings: Settings, source: Arc<dyn ServiceSource>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                series: Mutex::new(SeriesStore::new(settings.retention)),
                settings,
                source,
                clock,
                latest: Mutex::new(None),
                state: Mutex::new(SamplerState::default()),
                cpu_nanos: AtomicU64::new(0),
            }),
        }
    }

    pub fn settings(&self) -> Settings {
        self.inner.settings
    }

    /// Collects every interval until the task is aborted. Reading `/proc` blocks, so
    /// each collection runs on the blocking pool.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let telemetry = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(telemetry.settings().interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let worker = telemetry.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || worker.collect()).await {
                    tracing::warn!(error = %e, "telemetry collection failed");
                }
            }
        })
    }

    /// One collection, now.
    pub fn collect(&self) -> Arc<Latest> {
        let started = Instant::now();
        let cpu_started = thread_cpu();
        let interval = self.settings().interval();
        let services = self.inner.source.observe(interval);
        let at = self.inner.clock.now();
        let mut state = lock(&self.inner.state);
        let host = state.reader.read();
        let (cpu_percent, cpu_total_percent) = match &state.previous {
            Some((_, previous)) => cpu_busy_percent(previous, &host),
            None => (Vec::new(), None),
        };
        let mut instances = Vec::new();
        let mut seen = HashMap::new();
        for service in &services {
            for instance in &service.instances {
                let usage = instance.pid.and_then(tree_usage);
                let cpu_percent = usage.and_then(|u| {
                    let previous = state.instance_cpu.get(&instance.id).copied();
                    seen.insert(instance.id.clone(), (at, u.cpu_seconds));
                    let (then, seconds) = previous?;
                    let elapsed = at.since(then).as_secs_f64();
                    (elapsed > 0.0 && u.cpu_seconds >= seconds)
                        .then(|| (u.cpu_seconds - seconds) * 100.0 / elapsed)
                });
                instances.push(InstanceUsage {
                    service: service.service.clone(),
                    version: instance.version.clone(),
                    instance: instance.id.clone(),
                    state: instance.state.clone(),
                    restarts: instance.restarts,
                    usage,
                    cpu_percent,
                });
            }
        }
        state.instance_cpu = seen;
        let previous = state.previous.replace((at, host.clone()));
        drop(state);

        let mut latest = Latest {
            at,
            host,
            cpu_percent,
            cpu_total_percent,
            services,
            instances,
            collection_seconds: 0.0,
            collection_cpu_seconds_total: 0.0,
        };
        let points = points(&latest, previous.as_ref());
        {
            let mut series = lock(&self.inner.series);
            for (key, value) in points {
                series.record(at, key, value);
            }
            series.prune(at);
        }
        let cpu_used = thread_cpu().saturating_sub(cpu_started).as_nanos() as u64;
        let cpu_total = self.inner.cpu_nanos.fetch_add(cpu_used, Ordering::Relaxed) + cpu_used;
        latest.collection_seconds = started.elapsed().as_secs_f64();
        latest.collection_cpu_seconds_total = cpu_total as f64 / 1e9;
        let latest = Arc::new(latest);
        *lock(&self.inner.latest) = Some(latest.clone());
        latest
    }

    pub fn latest(&self) -> Option<Arc<Latest>> {
        lock(&self.inner.latest).clone()
    }

    /// Every series with points from `since` on, one per `step`.
    pub fn query(&self, since: Timestamp, step: Duration) -> Vec<SeriesView> {
        let series = lock(&self.inner.series);
        let retention = series.retention();
        series
            .iter()
            .map(|(key, s)| SeriesView {
                key: key.clone(),
                points: s.query(since, step, &retention),
            })
            .filter(|view| !view.points.is_empty())
            .collect()
    }

    /// (series held, their memory bound in bytes).
    pub fn footprint(&self) -> (usize, usize) {
        let series = lock(&self.inner.series);
        (series.len(), series.max_bytes())
    }
}

/// Busy percent per core and for all cores, from two readings.
pub fn cpu_busy_percent(
    previous: &HostSnapshot,
    current: &HostSnapshot,
) -> (Vec<f64>, Option<f64>) {
    let busy = |before: &crate::host::CpuSeconds, after: &crate::host::CpuSeconds| {
        let total = after.total() - before.total();
        (total > 0.0).then(|| ((after.busy() - before.busy()) * 100.0 / total).clamp(0.0, 100.0))
    };
    let per_core = previous
        .cpus
        .iter()
        .zip(&current.cpus)
        .map(|(b, a)| busy(b, a).unwrap_or(0.0))
        .collect();
    (per_core, busy(&previous.cpu_total(), &current.cpu_total()))
}

/// Counter increase per second between two readings.
fn rate(before: u64, after: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0 && after >= before).then(|| (after - before) as f64 / seconds)
}

/// The points one collection adds to the series: gauges as read, counters as rates.
fn points(latest: &Latest, previous: Option<&(Timestamp, HostSnapshot)>) -> Vec<(SeriesKey, f64)> {
    let host = &latest.host;
    let mut out = Vec::new();
    let mut push = |key: SeriesKey, value: f64| out.push((key, value));
    if let Some(total) = latest.cpu_total_percent {
        push(SeriesKey::host("cpu_percent", &[("cpu", "total")]), total);
    }
    for (core, busy) in latest.cpu_percent.iter().enumerate() {
        push(
            SeriesKey::host("cpu_percent", &[("cpu", &core.to_string())]),
            *busy,
        );
    }
    push(
        SeriesKey::host("memory_available_bytes", &[]),
        host.memory.available_bytes as f64,
    );
    if let Some(used) = latest.memory_used_percent() {
        push(SeriesKey::host("memory_used_percent", &[]), used);
    }
    push(
        SeriesKey::host("swap_used_bytes", &[]),
        host.memory
            .swap_total_bytes
            .saturating_sub(host.memory.swap_free_bytes) as f64,
    );
    push(SeriesKey::host("load1", &[]), host.load1);
    push(SeriesKey::host("load5", &[]), host.load5);
    push(SeriesKey::host("load15", &[]), host.load15);
    push(SeriesKey::host("processes", &[]), host.processes as f64);
    for fs in &host.filesystems {
        let used = fs.size_bytes.saturating_sub(fs.free_bytes) as f64;
        let usable = used + fs.avail_bytes as f64;
        if usable > 0.0 {
            push(
                SeriesKey::host("filesystem_used_percent", &[("mountpoint", &fs.mountpoint)]),
                used * 100.0 / usable,
            );
        }
    }
    if let Some(states) = &host.tcp_states {
        for (state, count) in states {
            push(
                SeriesKey::host("tcp_connections", &[("state", state)]),
                *count as f64,
            );
        }
    }
    if let Some((then, before)) = previous {
        let seconds = latest.at.since(*then).as_secs_f64();
        for disk in &host.disks {
            if let Some(old) = before.disks.iter().find(|d| d.device == disk.device) {
                let device = [("device", disk.device.as_str())];
                if let Some(r) = rate(old.read_bytes, disk.read_bytes, seconds) {
                    push(SeriesKey::host("disk_read_bytes_per_second", &device), r);
                }
                if let Some(r) = rate(old.written_bytes, disk.written_bytes, seconds) {
                    push(SeriesKey::host("disk_written_bytes_per_second", &device), r);
                }
            }
        }
        for net in &host.networks {
            if let Some(old) = before.networks.iter().find(|n| n.device == net.device) {
                let device = [("device", net.device.as_str())];
                if let Some(r) = rate(old.receive_bytes, net.receive_bytes, seconds) {
                    push(
                        SeriesKey::host("network_receive_bytes_per_second", &device),
                        r,
                    );
                }
                if let Some(r) = rate(old.transmit_bytes, net.transmit_bytes, seconds) {
                    push(
                        SeriesKey::host("network_transmit_bytes_per_second", &device),
                        r,
                    );
                }
            }
        }
    }
    for service in &latest.services {
        let name = service.service.as_str();
        push(
            SeriesKey::service(name, "in_flight", &[]),
            service.in_flight as f64,
        );
        for version in &service.versions {
            let labels = [
                ("set", version.set.as_str()),
                ("version", version.version.as_str()),
            ];
            let numbers = &version.interval;
            push(
                SeriesKey::service(name, "requests_per_second", &labels),
                numbers.requests_per_second(),
            );
            if let Some(rate) = numbers.error_rate_percent() {
                push(
                    SeriesKey::service(name, "error_rate_percent", &labels),
                    rate,
                );
            }
            for (metric, value) in [
                ("p50_ms", numbers.p50_ms),
                ("p95_ms", numbers.p95_ms),
                ("p99_ms", numbers.p99_ms),
            ] {
                if let Some(value) = value {
                    push(SeriesKey::service(name, metric, &labels), value);
                }
            }
            push(
                SeriesKey::service(name, "routable_instances", &labels),
                version.routable_instances as f64,
            );
        }
    }
    for instance in &latest.instances {
        let labels = [
            ("version", instance.version.as_str()),
            ("instance", instance.instance.as_str()),
        ];
        let service = instance.service.as_str();
        if let Some(cpu) = instance.cpu_percent {
            push(
                SeriesKey::service(service, "instance_cpu_percent", &labels),
                cpu,
            );
        }
        if let Some(usage) = instance.usage {
            push(
                SeriesKey::service(service, "instance_rss_bytes", &labels),
                usage.rss_bytes as f64,
            );
            push(
                SeriesKey::service(service, "instance_open_fds", &labels),
                usage.open_fds as f64,
            );
        }
        push(
            SeriesKey::service(service, "instance_restarts", &labels),
            f64::from(instance.restarts),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::CpuSeconds;
    use crate::source::{InstanceObservation, TrafficNumbers, VersionObservation};
    use rampart_core::ManualClock;
    use rampart_core::series::Scope;

    fn cpu(busy: f64, idle: f64) -> CpuSeconds {
        CpuSeconds {
            user: busy,
            idle,
            ..CpuSeconds::default()
        }
    }

    #[test]
    fn cpu_busy_percent_is_the_busy_share_of_the_elapsed_cpu_time() {
        let before = HostSnapshot {
            cpus: vec![cpu(10.0, 10.0), cpu(0.0, 20.0)],
            ..HostSnapshot::default()
        };
        let after = HostSnapshot {
            cpus: vec![cpu(13.0, 11.0), cpu(0.0, 24.0)],
            ..HostSnapshot::default()
        };
        let (per_core, total) = cpu_busy_percent(&before, &after);
        assert_eq!(per_core, vec![75.0, 0.0]);
        assert_eq!(total, Some(37.5));
    }

    /// A service whose one instance is this test process itself.
    struct OneService;

    impl ServiceSource for OneService {
        fn observe(&self, interval: Duration) -> Vec<ServiceObservation> {
            vec![ServiceObservation {
                service: "web".into(),
                backend: "process".into(),
                versions: vec![VersionObservation {
                    set: "stable".into(),
                    version: "v1".into(),
                    interval: TrafficNumbers {
                        window_secs: interval.as_secs_f64(),
                        requests: 50,
                        errors: 5,
                        p50_ms: Some(2.0),
                        p95_ms: Some(9.0),
                        p99_ms: Some(20.0),
                    },
                    minute: TrafficNumbers::default(),
                    routable_instances: 1,
                }],
                in_flight: 3,
                instances: vec![InstanceObservation {
                    id: "v1-0".into(),
                    version: "v1".into(),
                    state: "ready".into(),
                    ready: true,
                    down: false,
                    pid: Some(std::process::id()),
                    restarts: 2,
                }],
                p95_objective_ms: None,
            }]
        }
    }

    #[test]
    fn collections_record_host_service_and_instance_series() {
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
        let telemetry = Telemetry::new(
            Settings {
                retention: Retention::default(),
            },
            Arc::new(OneService),
            clock.clone(),
        );
        let first = telemetry.collect();
        assert!(first.cpu_total_percent.is_none());
        let usage = first.instances[0].usage.expect("this process is read");
        assert!(usage.rss_bytes > 0 && usage.open_fds > 0);
        // Burn CPU until the kernel has charged some to this process (a busy host
        // may deschedule the spin, so wall time alone proves nothing).
        let spin = Instant::now();
        while tree_usage(std::process::id()).is_some_and(|u| u.cpu_seconds <= usage.cpu_seconds)
            && spin.elapsed() < Duration::from_secs(10)
        {
            std::hint::black_box(spin.elapsed());
        }
        clock.advance(Duration::from_secs(5));
        let second = telemetry.collect();
        assert!(second.cpu_total_percent.is_some());
        assert!(
            second.instances[0].cpu_percent.is_some_and(|p| p > 0.0),
            "{:?} then {:?}",
            first.instances[0],
            second.instances[0]
        );

        let views = telemetry.query(Timestamp(0), Duration::from_secs(5));
        let find = |scope: &Scope, metric: &str| {
            views
                .iter()
                .find(|v| &v.key.scope == scope && v.key.metric == metric)
                .map(|v| v.points.clone())
        };
        let web = Scope::Service("web".into());
        let rps = find(&web, "requests_per_second").expect("rps");
        assert_eq!(rps.len(), 2);
        assert_eq!(rps[0].value, 10.0);
        assert_eq!(
            find(&web, "error_rate_percent").expect("errors")[0].value,
            10.0
        );
        assert_eq!(
            find(&web, "instance_restarts").expect("restarts")[1].value,
            2.0
        );
        assert_eq!(
            find(&Scope::Host, "cpu_percent").map(|p| p.len()),
            Some(1),
            "a rate needs two readings"
        );
        assert!(find(&Scope::Host, "load1").is_some());
        assert!(find(&Scope::Host, "memory_available_bytes").is_some());
        let (count, bytes) = telemetry.footprint();
        assert_eq!(bytes, count * Retention::default().max_bytes_per_series());
    }
}
