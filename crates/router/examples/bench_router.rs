//! The router as `bench/router.sh` measures it: one service, a 90/10 split between a
//! stable and a canary instance.
//!
//! `bench_router LISTEN STABLE_ADDR CANARY_ADDR [metrics-on|metrics-off]`

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::SystemClock;
use rampart_router::{Router, ServiceRoute, UpstreamSet};

// The same allocator as the `rampart` binary, so the benchmark measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The data plane runs on the router's own worker threads; this runtime only
    // starts it and waits for Ctrl-C or SIGTERM, as the rest of rampart would.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, stable, canary, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: bench_router LISTEN STABLE_ADDR CANARY_ADDR [metrics-on|metrics-off]".into(),
        );
    };
    let metrics_on = rest.first().is_none_or(|m| m != "metrics-off");
    let route = ServiceRoute {
        name: "bench".into(),
        listen: listen.parse()?,
        settings: Default::default(),
        stable: UpstreamSet::new("v1", vec![stable.parse()?]),
        canary: Some(UpstreamSet::new("v2", vec![canary.parse()?])),
        canary_weight: 10.0,
        tls: None,
    };
    // BENCH_ROUTER_WORKERS=N sets the data-plane threads (default: one per core).
    let workers = std::env::var("BENCH_ROUTER_WORKERS")
        .ok()
        .and_then(|w| w.parse::<NonZeroUsize>().ok());
    let router = match workers {
        Some(workers) => {
            Router::start_with_workers(vec![route], Arc::new(SystemClock), workers).await?
        }
        None => Router::start(vec![route], Arc::new(SystemClock)).await?,
    };
    if let Some(service) = router.service("bench") {
        service.set_metrics_enabled(metrics_on);
        eprintln!(
            "bench_router on {} (metrics {})",
            service.listen_addr(),
            if metrics_on { "on" } else { "off" }
        );
    }
    // bench/router.sh stops it with SIGTERM and reads the split from this line.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    if let Some(service) = router.service("bench") {
        let window = service.window(Duration::from_secs(600));
        eprintln!(
            "split: stable {} requests, canary {} requests (last 10 min)",
            window.stable.requests, window.canary.requests
        );
    }
    router.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
