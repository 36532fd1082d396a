//! rampart engine
