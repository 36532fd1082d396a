//! rampart's data plane: an HTTP reverse proxy per service that splits traffic
//! between a stable and a canary set of upstream instances.
//!
//! It knows nothing of rollouts — only upstream sets, weights and metrics. The engine
//! drives it through [`ServiceHandle`]: weights, set changes and whole-table swaps
//! take effect on the next request, while requests in flight finish where they were
//! sent; removed instances drain. The judge reads per-set windows
//! ([`ServiceHandle::window`]); Prometheus reads [`Router::collector`].
//!
//! Behaviour worth knowing:
//! - **Threads**: the data plane runs on its own threads, one per core by default
//!   ([`Router::start_with_workers`] picks the number), each a single-threaded tokio
//!   runtime that accepts on its own `SO_REUSEPORT` socket of every service (the
//!   kernel spreads connections over them; `listeners.rs`), keeps its own keep-alive
//!   connections to the upstreams and its own copy of the counters and windows
//!   (added up when read), so a request is served start to end on one thread. The
//!   caller's runtime only runs drains and whatever awaits the handles.
//! - **Split**: every block of 100 requests gives the canary exactly its share, at
//!   random positions within the block (`split.rs` explains why); the
//!   `version_header`, when configured, lets clients in `version_header_from` pick a
//!   set (from anywhere else it is ignored); with
//!   `sticky_cookie` a client keeps the set it first got until a set's version
//!   changes (the table generation is part of the cookie).
//! - **Evidence**: only the requests the split assigned are in the per-set windows the
//!   judge reads ([`ServiceHandle::window_between`]). Requests whose client picked the
//!   set with the version header are counted apart: [`WindowDetail::chosen_by_client`],
//!   `chosen_by_client` in the status, and `chosen_by="client"` on the Prometheus
//!   series. A sticky cookie is signed, so it only repeats an earlier decision of the
//!   split and its requests stay the split's.
//! - **Timeouts**: `connect_timeout` bounds the TCP connect; `request_timeout` bounds
//!   the time to the upstream's response head (504). Bodies then stream without a
//!   deadline, so long downloads are not cut.
//! - **Latency** is measured from the request's arrival to the end of the response
//!   body, so an upstream that sends its head at once and its body slowly is slow; a
//!   body that fails midway is an error; a client that stops reading is recorded
//!   with the time until then.
//! - **Clients**: a request head must arrive within `header_read_timeout` (from
//!   connecting, or from the first byte of the next request on a kept-alive
//!   connection; `connection.rs` explains why rampart keeps this timeout), within
//!   `max_header_bytes` and `max_headers` (else 431); a connection with nothing in
//!   flight and no bytes moving for `idle_timeout` is closed; a request body silent
//!   for `body_read_timeout` is answered 408 `client_timeout` and charged to no
//!   version; one client address may hold `max_connections_per_client` connections,
//!   more are closed at once.
//! - **Retries**: a request without a body is retried once on another instance
//!   (same set first) after a connect failure, and for idempotent methods also after
//!   the connection closed before any response; requests with a body never are.
//! - **Outcomes belong to the chosen set**: a request is recorded once, against the
//!   set the split (or the client's header) chose for it. A failed attempt there — a
//!   refused or reset connection, a timeout, a 5xx — is that set's error even when a
//!   retry on another instance, possibly of the other set, then serves the client;
//!   the retry's answer is charged to no set (it is counted in `retries`). A chosen
//!   set with no instance to take the request is charged a 503. So a canary that
//!   resets connections shows up as canary errors instead of stable successes.
//! - **Outliers**: N consecutive 5xx, connect failures or timeouts eject an instance
//!   for `outlier_base_ejection × 2^k` (k = earlier ejections, capped at 6); the last
//!   available instance of a set is never ejected.
//! - **Warm start**: an instance that joins the table while the router runs (a new
//!   canary) gets two pooled connections opened from every worker before its first
//!   request, so it is not slower than stable's warm instances for want of them.
//! - **Drains**: an instance that leaves the table takes no new requests; its
//!   in-flight ones (WebSocket tunnels included) finish within `drain_grace`.
//! - **Errors** the router answers itself are RFC 9457 `application/problem+json`
//!   with a `problem` member: `upstream_unreachable` (502), `upstream_failed` (502),
//!   `upstream_timeout` (504), `no_upstream` (503), `overloaded` (503 + `Retry-After`),
//!   `loop_detected` (508), `client_timeout` (408), `client_failed` (400).
//! - **TLS**: a route with `tls` serves HTTPS only, HTTP/1.1 and h2 chosen by ALPN;
//!   the handshake must finish within `header_read_timeout`. The certificate is read
//!   again by [`tls::reload_all`] (SIGHUP) without closing a connection. Without it
//!   the connection's I/O is the plain socket, with no TLS layer in between.
//! - **Loops**: every forwarded request carries `x-rampart-forwarded` with a token of
//!   this process; one that arrives carrying it came back through a misconfigured
//!   upstream (an address of rampart's own) and is answered 508, never forwarded again.
//!
//! ```no_run
//! # async fn run() -> Result<(), rampart_router::RouterError> {
//! use std::sync::Arc;
//! use rampart_router::{Router, ServiceRoute, UpstreamSet};
//! let route = ServiceRoute {
//!     name: "checkout".into(),
//!     listen: "127.0.0.1:8080".parse().unwrap(),
//!     settings: Default::default(),
//!     stable: UpstreamSet::new("v1", vec!["127.0.0.1:9001".parse().unwrap()]),
//!     canary: Some(UpstreamSet::new("v2", vec!["127.0.0.1:9002".parse().unwrap()])),
//!     canary_weight: 5.0,
//!     tls: None,
//! };
//! let router = Router::start(vec![route], Arc::new(rampart_core::SystemClock)).await?;
//! let checkout = router.service("checkout").unwrap();
//! checkout.set_weight(25.0)?;
//! let sample = checkout.window(std::time::Duration::from_secs(60));
//! # Ok(()) }
//! ```

mod balance;
mod body;
mod connection;
mod error;
mod exchange;
mod fast_random;
mod headers;
mod limit;
mod linger;
pub mod listeners;
mod metrics;
mod mirror;
mod outcome;
mod per_worker;
mod pool;
mod problem;
mod proxy;
mod router;
mod service;
mod split;
mod status;
mod steering;
mod sticky;
mod table;
pub mod tls;
mod upstream;
mod worker;

pub use error::RouterError;
pub use metrics::collector::RouterCollector;
pub use metrics::window::{RING_SECONDS, SetWindow};
pub use mirror::MIRROR_HEADER;
pub use router::{BoundService, Router};
pub use service::{ChosenByClient, ServiceHandle, ServiceRoute, WindowDetail};
pub use status::{InstanceStatus, MirrorStatus, RequestCounts, SetStatus, TrafficStatus};
pub use table::{RouteTable, SetKind, UpstreamSet};
pub use upstream::{DrainReport, InstanceState};
