//! The autoscaler: the Kubernetes HPA algorithm, exactly, plus a predictive mode and
//! a budget cap. Pure: every decision is a function of the spec, the observation,
//! the scaler's memory and `now`, and carries its inputs, numbers and reason.

pub mod forecast;
pub mod metrics;
pub mod scaler;
pub mod spec;
#[cfg(test)]
mod tests;

pub use forecast::{ForecastOutcome, HoltWinters, LoadHistory, forecast_instances};
pub use metrics::{InstanceSample, MetricOutcome, Observation};
pub use scaler::{Action, Autoscaler, Bounds, CostReport, Decision, Extra, Limit};
pub use spec::{
    AutoscaleSpec, Behavior, Cost, MetricKind, Mode, Policy, PolicyAmount, Select, Target,
};
