//! `/api/v1` handlers, one file per resource.

pub mod audit;
pub mod deployments;
pub mod events;
pub mod notifications;
pub mod services;
pub mod telemetry;
pub mod tokens;
pub mod traffic;
