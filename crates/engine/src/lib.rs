//! The controller loops: validation, canary steps, analysis, promotion and rollback,
//! crash recovery. Level-triggered: every decision comes from `rampart-core`'s state
//! machine and judges; this crate commits each new state to the store, then acts on
//! it through the router and the backends.

mod controller;
mod engine;
mod error;
mod observe;
mod own_listeners;
mod record;
mod rollout_notifications;
mod samples;
mod service;
mod settings;
mod shared;
pub mod validation;
mod views;

pub use engine::{DeployRequest, Engine, LIVE_WINDOW, Operation, TrafficChange};
pub use error::EngineError;
pub use record::{DeploymentKind, DeploymentRecord};
pub use shared::{EngineEvent, EngineEventKind, SYSTEM_ACTOR};
pub use views::{
    ActiveRolloutView, AnalysisSummary, DeploymentDetail, DeploymentSummary, LiveNumbers,
    MeasurementPage, MeasurementView, ServiceStatus, SetNumbers,
};
