//! Incident rules: the condition language, its evaluation over time with
//! hysteresis, and the default rules. Pure: values come in through [`Readings`],
//! time as a [`crate::Timestamp`].

mod condition;
mod defaults;
mod evaluate;
mod metric;

pub use condition::{Comparison, Condition, ConditionError, Expr, MAX_CONDITION_LEN, Op, parse};
pub use defaults::{DEFAULT_RULES, DefaultRule};
pub use evaluate::{Change, Observation, Readings, Tracker, format_duration};
pub use metric::{Dimension, METRICS, Metric, MetricRef, Subject, format_value};

#[cfg(test)]
mod tests;
