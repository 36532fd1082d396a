//! rampart backends
