//! rampart store
