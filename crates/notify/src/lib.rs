//! Notifiers: how a [`rampart_core::notify::Message`] in the store's outbox
//! reaches Slack, PagerDuty or a webhook, at least once.
//!
//! - [`Channel`] renders a message into one HTTP request for one receiver kind;
//!   each kind lives in its own file and registers itself in the
//!   [`ChannelRegistry`] under the `kind` the config uses.
//! - [`DeliveryWorker`] claims due rows from the outbox, sends them at each
//!   notifier's rate, and records every attempt: delivered, retried with backoff
//!   (429, 5xx, timeouts, honouring `Retry-After`), failed (other 4xx) or abandoned
//!   (retried for longer than the notifier's `retry_for`).

mod backoff;
mod channel;
mod delivery;
mod metrics;
mod pagerduty;
mod rate_limit;
mod registry;
mod slack;
mod text;
mod webhook;

pub use backoff::{parse_retry_after, retry_delay};
pub use channel::{Channel, ChannelContext, Outgoing, Rendered};
pub use delivery::{DeliveryWorker, KEEP_FINISHED, Notifiers};
pub use metrics::DeliveryMetrics;
pub use pagerduty::pagerduty_severity;
pub use rate_limit::RateLimiter;
pub use registry::ChannelRegistry;
pub use webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify};
