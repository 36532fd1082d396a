//! A steady-rate HTTP load generator for the demo: what users would send, counted by
//! outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Debug, Default)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub server_errors: AtomicU64,
    pub other_status: AtomicU64,
    pub transport_errors: AtomicU64,
}

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

pub struct LoadGenerator {
    stats: Arc<LoadStats>,
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
}

/// Workers share the rate; each paces itself, so the total stays near `rps`.
const WORKERS: u32 = 8;

impl LoadGenerator {
    pub fn start(url: String, rps: u32) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(WORKERS as usize)
            .build()?;
        let stats = Arc::new(LoadStats::default());
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        let period = Duration::from_secs_f64(f64::from(WORKERS) / f64::from(rps.max(1)));
        for _ in 0..WORKERS {
            let (client, url, stats, mut stopped) =
                (client.clone(), url.clone(), stats.clone(), stopped.clone());
            workers.spawn(async move {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let counter = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            &stats.ok
                        }
                        Ok(r) if r.status().is_server_error() => &stats.server_errors,
                        Ok(_) => &stats.other_status,
                        Err(_) => &stats.transport_errors,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Ok(Self {
            stats,
            stop,
            workers,
        })
    }

    pub fn snapshot(&self) -> LoadSnapshot {
        LoadSnapshot {
            ok: self.stats.ok.load(Ordering::Relaxed),
            server_errors: self.stats.server_errors.load(Ordering::Relaxed),
            other_status: self.stats.other_status.load(Ordering::Relaxed),
            transport_errors: self.stats.transport_errors.load(Ordering::Relaxed),
        }
    }

    pub async fn stop(mut self) -> LoadSnapshot {
        let _ = self.stop.send(true);
        while self.workers.join_next().await.is_some() {}
        self.snapshot()
    }
}
