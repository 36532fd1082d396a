//! rampart engine

pub mod validation;
