//! The routes and the failure injection in front of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;

use crate::SampleAppArgs;

pub(crate) struct AppState {
    version: String,
    error_rate: f64,
    latency: Duration,
    latency_jitter_ms: u64,
    /// Fraction of counted requests whose connection is closed unanswered.
    reset_rate: f64,
    fail_after: Option<u64>,
    crash_after: Option<u64>,
    /// Counts every request except /healthz and /stats.
    requests: AtomicU64,
    /// When the latest counted request arrived (Unix ms): benchmarks use it to see
    /// when the router stopped sending traffic here.
    last_request_unix_ms: AtomicU64,
    /// One generator per process, so a `--seed` replays the same error sequence.
    rng: Mutex<StdRng>,
    crashed: watch::Sender<bool>,
}

impl AppState {
    pub(crate) fn new(args: &SampleAppArgs) -> (Arc<Self>, watch::Receiver<bool>) {
        let rng = match args.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let (crashed, crashed_rx) = watch::channel(false);
        let state = Self {
            version: args.app_version.clone(),
            error_rate: args.error_rate,
            latency: Duration::from_millis(args.latency_ms),
            latency_jitter_ms: args.latency_jitter_ms,
            reset_rate: args.reset_percent / 100.0,
            fail_after: args.fail_after,
            crash_after: args.crash_after,
            requests: AtomicU64::new(0),
            last_request_unix_ms: AtomicU64::new(0),
            rng: Mutex::new(rng),
            crashed,
        };
        (Arc::new(state), crashed_rx)
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Whether a request to `path` is to be answered by closing its connection.
    /// Health and stats are never reset, so readiness keeps working.
    pub(crate) fn roll_reset(&self, path: &str) -> bool {
        if self.reset_rate <= 0.0 || path == "/healthz" || path == "/stats" {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.random::<f64>() < self.reset_rate
    }

    fn delay_and_error_roll(&self) -> (Duration, bool) {
        // A poisoned lock only means another request panicked mid-draw; the generator
        // state is still usable.
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let jitter = if self.latency_jitter_ms > 0 {
            Duration::from_millis(rng.random_range(0..=self.latency_jitter_ms))
        } else {
            Duration::ZERO
        };
        let fail = self.error_rate > 0.0 && rng.random::<f64>() < self.error_rate;
        (self.latency + jitter, fail)
    }
}

/// The request's 1-based number among counted requests.
#[derive(Clone, Copy)]
struct RequestNumber(u64);

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/version", get(version))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            inject_failures,
        ))
        // Added after the layer, so health checks see neither errors nor latency.
        .route("/healthz", get(healthz))
        .route("/stats", get(stats))
        // Outermost, so that failures and health answers carry it too.
        .layer(middleware::from_fn_with_state(state.clone(), name_version))
        .with_state(state)
}

async fn name_version(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&state.version) {
        response.headers_mut().insert(crate::VERSION_HEADER, value);
    }
    response
}

async fn inject_failures(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let number = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    state
        .last_request_unix_ms
        .fetch_max(unix_ms(), Ordering::SeqCst);
    if state.crash_after.is_some_and(|limit| number > limit) {
        // Raced with the crash: the process is on its way out.
        return (StatusCode::SERVICE_UNAVAILABLE, "crashing").into_response();
    }
    request.extensions_mut().insert(RequestNumber(number));

    let (delay, roll_failed) = state.delay_and_error_roll();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let past_fail_after = state.fail_after.is_some_and(|limit| number > limit);
    let response = if past_fail_after || roll_failed {
        (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response()
    } else {
        next.run(request).await
    };

    if state.crash_after == Some(number) {
        state.crashed.send_replace(true);
    }
    response
}

async fn root(State(state): State<Arc<AppState>>) -> String {
    format!("hello from {}", state.version)
}

#[derive(Serialize)]
struct VersionBody<'a> {
    service: &'static str,
    version: &'a str,
    requests: u64,
}

async fn version(
    State(state): State<Arc<AppState>>,
    Extension(RequestNumber(number)): Extension<RequestNumber>,
) -> Response {
    Json(VersionBody {
        service: "sample-app",
        version: &state.version,
        requests: number,
    })
    .into_response()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[derive(Serialize)]
struct StatsBody<'a> {
    version: &'a str,
    requests: u64,
    /// 0 until the first counted request.
    last_request_unix_ms: u64,
}

/// Counters, without counting itself (like /healthz).
async fn stats(State(state): State<Arc<AppState>>) -> Response {
    Json(StatsBody {
        version: &state.version,
        requests: state.requests(),
        last_request_unix_ms: state.last_request_unix_ms.load(Ordering::SeqCst),
    })
    .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_the_base_plus_at_most_the_jitter() {
        let args = SampleAppArgs {
            latency_ms: 50,
            latency_jitter_ms: 10,
            seed: Some(1),
            ..SampleAppArgs::default()
        };
        let (state, _crashed) = AppState::new(&args);
        let delays: Vec<Duration> = (0..200).map(|_| state.delay_and_error_roll().0).collect();
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(60));
        assert!(delays.iter().all(|d| (min..=max).contains(d)), "{delays:?}");
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter never varied"
        );
    }

    #[test]
    fn no_latency_and_no_errors_by_default() {
        let (state, _crashed) = AppState::new(&SampleAppArgs::default());
        assert_eq!(state.delay_and_error_roll(), (Duration::ZERO, false));
    }
}
