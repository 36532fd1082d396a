//! The controller loops: validation, canary steps, analysis, promotion and rollback,
//! emergency reverts, crash recovery.
//!
//! Every decision comes from `rampart-core`'s state machine and judges; this crate
//! commits each new state to the store, then acts on it through the router and the
//! backends. It converges rather than only reacting (docs/CONTROLLER.md): each
//! service has one writer of its state and routing table; every tick compares the
//! committed phase with the router's table and the backend's instances and repairs
//! the difference; a failed or panicked action and an uncommitted state are retried
//! with backoff; every phase that waits on an action has a deadline after which
//! the rollout ends on the safe side; a panicked controller is restarted from the
//! last committed state; background work (stopping versions) is tracked per service
//! and retried until done. After a crash it reads the store and drives every rollout
//! to a safe, documented state.

mod analysis;
mod backoff;
mod controller;
mod engine;
mod error;
mod hooks;
pub mod incidents;
mod observe;
mod own_listeners;
mod preview;
mod prometheus_query;
mod record;
pub mod reload;
mod request_error;
mod resolve;
mod retire;
mod rollout_metrics;
mod rollout_notifications;
mod routes;
mod samples;
pub mod scaling;
mod service;
mod settings;
mod shared;
pub mod validation;
mod views;

#[cfg(test)]
mod fault_injection;

pub use engine::{
    ApprovalNeeded, DeployRequest, Engine, LIVE_WINDOW, Operation, Revision, TrafficChange,
};
pub use error::EngineError;
pub use record::{DeploymentKind, DeploymentRecord};
pub use rollout_metrics::RolloutCollector;
pub use routes::RouteWriter;
pub use scaling::{ScaleRequest, ScalingRecord, ScalingView};
pub use shared::{EngineEvent, EngineEventKind, SYSTEM_ACTOR};
pub use views::{
    ActiveRolloutView, AnalysisSummary, DeploymentDetail, DeploymentSummary, LiveNumbers,
    MeasurementPage, MeasurementView, ServiceStatus, SetNumbers,
};
