//! A steady-rate HTTP load generator (`rampart load` and the demo): what users would
//! send, counted by outcome and by the version that answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rampart_core::LatencyHistogram;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Responses that named no version (and requests that got no response at all).
pub const NO_VERSION: &str = "-";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    pub ok: u64,
    pub server_errors: u64,
    pub other_status: u64,
    pub transport_errors: u64,
}

impl LoadSnapshot {
    pub fn total(&self) -> u64 {
        self.ok + self.server_errors + self.other_status + self.transport_errors
    }
    pub fn failed(&self) -> u64 {
        self.server_errors + self.other_status + self.transport_errors
    }
    pub fn since(&self, earlier: &LoadSnapshot) -> LoadSnapshot {
        LoadSnapshot {
            ok: self.ok - earlier.ok,
            server_errors: self.server_errors - earlier.server_errors,
            other_status: self.other_status - earlier.other_status,
            transport_errors: self.transport_errors - earlier.transport_errors,
        }
    }
}

/// What one version's responses looked like.
#[derive(Debug, Clone, Default)]
pub struct VersionTally {
    pub requests: u64,
    /// 5xx answers and requests that got no answer.
    pub errors: u64,
    pub latency: LatencyHistogram,
}

impl VersionTally {
    pub fn error_pct(&self) -> Option<f64> {
        (self.requests > 0).then(|| 100.0 * self.errors as f64 / self.requests as f64)
    }

    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.latency.quantile_us(q).map(|us| us as f64 / 1000.0)
    }

    pub fn merge(&mut self, other: &VersionTally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// Per version, by name; `NO_VERSION` for answers that did not say.
pub type ByVersion = BTreeMap<String, VersionTally>;

#[derive(Debug, Default)]
struct Tally {
    totals: LoadSnapshot,
    /// Since the start.
    versions: ByVersion,
    /// Since the last [`LoadGenerator::take_interval`].
    interval: ByVersion,
}

enum Outcome {
    Ok,
    ServerError,
    OtherStatus,
    Transport,
}

impl Tally {
    fn record(&mut self, version: String, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => self.totals.ok += 1,
            Outcome::ServerError => self.totals.server_errors += 1,
            Outcome::OtherStatus => self.totals.other_status += 1,
            Outcome::Transport => self.totals.transport_errors += 1,
        }
        let error = matches!(outcome, Outcome::ServerError | Outcome::Transport);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let entry = self.interval.entry(version).or_default();
        entry.requests += 1;
        entry.errors += u64::from(error);
        entry.latency.record(us);
    }
}

/// Where the load goes and how it is read.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub url: String,
    /// Requests per second, shared by all workers.
    pub rate: u32,
    /// The response header that names the version that answered.
    pub version_header: String,
    pub timeout: Duration,
}

impl LoadPlan {
    pub fn new(url: String, rate: u32) -> Self {
        Self {
            url,
            rate,
            version_header: rampart_sample_app::VERSION_HEADER.to_string(),
            timeout: Duration::from_secs(10),
        }
    }
}

pub struct LoadGenerator {
    tally: Arc<Mutex<Tally>>,
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
    started: Instant,
}

/// Workers share the rate; each paces itself, so the total stays near the rate even
/// when single requests are slow.
const MAX_WORKERS: u32 = 16;

impl LoadGenerator {
    pub fn start(plan: LoadPlan) -> Result<Self, reqwest::Error> {
        Self::start_with(plan, reqwest::Client::builder())
    }

    /// Like [`LoadGenerator::start`], with a client set up by the caller (a CA to
    /// trust for an https URL).
    pub fn start_with(
        plan: LoadPlan,
        http: reqwest::ClientBuilder,
    ) -> Result<Self, reqwest::Error> {
        let rate = plan.rate.max(1);
        let workers_count = MAX_WORKERS.min(rate);
        let client = http
            .timeout(plan.timeout)
            .pool_max_idle_per_host(workers_count as usize)
            .build()?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        let period = Duration::from_secs_f64(f64::from(workers_count) / f64::from(rate));
        let header = Arc::new(plan.version_header);
        for worker in 0..workers_count {
            let (client, url, tally, header, mut stopped) = (
                client.clone(),
                plan.url.clone(),
                tally.clone(),
                header.clone(),
                stopped.clone(),
            );
            // Spread the workers over one period, so requests arrive evenly.
            let offset = period.mul_f64(f64::from(worker) / f64::from(workers_count));
            workers.spawn(async move {
                let mut ticker =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let sent = Instant::now();
                    let (version, outcome) = match client.get(&url).send().await {
                        Ok(response) => {
                            let status = response.status();
                            let version = response
                                .headers()
                                .get(header.as_str())
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or(NO_VERSION)
                                .to_string();
                            let outcome = if status.is_success() {
                                let _ = response.bytes().await;
                                Outcome::Ok
                            } else if status.is_server_error() {
                                Outcome::ServerError
                            } else {
                                Outcome::OtherStatus
                            };
                            (version, outcome)
                        }
                        Err(_) => (NO_VERSION.to_string(), Outcome::Transport),
                    };
                    let latency = sent.elapsed();
                    lock(&tally).record(version, outcome, latency);
                }
            });
        }
        Ok(Self {
            tally,
            stop,
            workers,
            started: Instant::now(),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Totals by outcome since the start.
    pub fn snapshot(&self) -> LoadSnapshot {
        lock(&self.tally).totals
    }

    /// Per version since the previous call, folded into the totals per version.
    pub fn take_interval(&self) -> ByVersion {
        let mut tally = lock(&self.tally);
        let interval = std::mem::take(&mut tally.interval);
        for (version, numbers) in &interval {
            tally
                .versions
                .entry(version.clone())
                .or_default()
                .merge(numbers);
        }
        interval
    }

    /// Per version since the start.
    pub fn by_version(&self) -> ByVersion {
        self.take_interval();
        lock(&self.tally).versions.clone()
    }

    /// Stops sending, lets requests in flight finish, and returns the totals by
    /// outcome and per version since the start.
    pub async fn stop(mut self) -> (LoadSnapshot, ByVersion) {
        let _ = self.stop.send(true);
        while self.workers.join_next().await.is_some() {}
        (self.snapshot(), self.by_version())
    }
}

/// A worker that panicked mid-update leaves counts that are still counts.
fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}
