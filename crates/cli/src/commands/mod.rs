//! One file per command.

pub mod audit;
pub mod bootstrap;
pub mod check_config;
pub mod serve;
pub mod target;
pub mod token;
