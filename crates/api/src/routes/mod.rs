//! `/api/v1` handlers, one file per resource.

pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod dashboard_api;
pub mod deployments;
pub mod events;
pub mod history;
pub mod incidents;
pub mod notifications;
pub mod reload;
pub mod scaling;
pub mod services;
pub mod telemetry;
pub mod tokens;
pub mod traffic;
