//! rampart telemetry
