//! rampart's data plane: an HTTP reverse proxy per service that splits traffic
//! between a stable and a canary set of upstream instances.
//!
//! It knows nothing of rollouts — only upstream sets, weights and metrics. The engine
//! drives it through [`ServiceHandle`]: weights, set changes and whole-table swaps
//! take effect on the next request, while requests in flight finish where they were
//! sent; removed instances drain. The judge reads per-set windows
//! ([`ServiceHandle::window`]); Prometheus reads [`Router::collector`].
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
//! };
//! let router = Router::start(vec![route], Arc::new(rampart_core::SystemClock)).await?;
//! let checkout = router.service("checkout").unwrap();
//! checkout.set_weight(25.0)?;
//! let sample = checkout.window(std::time::Duration::from_secs(60));
//! # Ok(()) }
//! ```

mod balance;
mod body;
mod error;
mod headers;
mod limit;
mod metrics;
mod problem;
mod proxy;
mod router;
mod service;
mod split;
mod status;
mod sticky;
mod table;
mod upstream;

pub use error::RouterError;
pub use metrics::collector::RouterCollector;
pub use metrics::window::{RING_SECONDS, SetWindow};
pub use router::Router;
pub use service::{ServiceHandle, ServiceRoute, WindowDetail};
pub use status::{InstanceStatus, SetStatus, TrafficStatus};
pub use table::{RouteTable, SetKind, UpstreamSet};
pub use upstream::{DrainReport, InstanceState};
