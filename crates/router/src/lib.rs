//! rampart router
