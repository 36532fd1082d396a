//! The TOML model of services, strategies, checks and rules, and its validation with
//! precise error messages (file, line, column, snippet, what is allowed, and a
//! suggestion for typos).
//!
//! [`load`] reads a file, [`parse`] a string; both check the structure (unknown keys,
//! types, durations, addresses) and then the meaning (unique names, free listen
//! addresses, increasing step weights, …), and report every problem found at once as
//! a [`ConfigError`] whose `Display` is the text a user should see.

mod check_serde;
mod diagnostic;
pub mod duration;
mod hook_checks;
pub mod hooks;
mod incident_checks;
mod incidents;
mod load;
mod locate;
mod metric_analysis;
pub mod model;
mod notifiers;
mod rules;
mod schema;
#[cfg(test)]
mod schema_consistency;
mod semantic;
mod structure;
mod suggest;
mod summary;
mod syntax;
pub mod tls_files;
mod upstream_address;

pub use diagnostic::{ConfigError, Diagnostic};
pub use duration::Duration;
pub use hooks::{ConfirmHook, HookConfig, HookKind, LoadTestHook, WebhookHook};
pub use incidents::{ActionKind, IncidentActionConfig, IncidentRuleConfig};
pub use load::{check, load, parse};
pub use metric_analysis::{AnalysisMetricConfig, MetricProviderConfig, PrometheusProviderConfig};
pub use model::*;
pub use upstream_address::UpstreamAddress;
