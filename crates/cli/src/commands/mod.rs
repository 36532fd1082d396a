//! One file per command.

pub mod approve;
pub mod audit;
pub mod bootstrap;
pub mod check_config;
pub mod data_dir_lock;
pub mod demo;
pub mod history;
pub mod incident_sources;
pub mod incidents;
pub mod load;
pub mod notifications;
pub mod reload;
pub mod rollout;
pub mod sample_app;
pub mod scaling;
pub mod serve;
pub mod serve_reload;
pub mod target;
pub mod token;
pub mod top;
pub mod watch;
