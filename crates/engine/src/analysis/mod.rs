//! Analysis from the user's own metrics: metric providers behind one trait, chosen by
//! the `kind` of each `[[metric_provider]]`, and the per-rollout runner that queries
//! them on each metric's interval and turns the answers into rollout inputs.
//!
//! The router's own measurements stay the default analysis, fed to the judge every
//! second as per-request counts; provider metrics are aggregated values answered by
//! a query, so they sit beside the judge rather than behind its `observe` (the
//! judge's anytime-valid tests need the counts). What they mean is decided in core
//! (`rampart_core::analysis`); here is only the I/O.

mod prometheus;
mod rollout;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rampart_config::{Config, MetricProviderConfig};

pub(crate) use rollout::RolloutMetrics;

/// What a query answered.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryAnswer {
    Value(f64),
    /// The query ran and returned nothing to judge (no series, NaN); why, in words.
    NoData(String),
}

/// A query that did not run (unreachable, HTTP error, timeout, a query the provider
/// refused); in words.
pub type ProviderError = String;

pub type QueryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<QueryAnswer, ProviderError>> + Send + 'a>>;

/// A source of metrics of the user's own, asked one instant query at a time.
pub trait MetricProvider: Send + Sync {
    /// The `kind` in the config.
    fn kind(&self) -> &'static str;
    fn query<'a>(&'a self, query: &'a str) -> QueryFuture<'a>;
}

/// The config's providers by name.
pub type Providers = BTreeMap<String, Arc<dyn MetricProvider>>;

/// One provider per `[[metric_provider]]`, by its kind.
pub fn build_providers(config: &Config) -> Result<Providers, String> {
    config
        .metric_providers
        .iter()
        .map(|provider| {
            let built: Arc<dyn MetricProvider> = match provider {
                MetricProviderConfig::Prometheus(c) => Arc::new(
                    prometheus::Prometheus::new(&c.address, c.timeout.get())
                        .map_err(|e| format!("metric provider {}: {e}", c.name))?,
                ),
            };
            Ok((provider.name().to_string(), built))
        })
        .collect()
}
