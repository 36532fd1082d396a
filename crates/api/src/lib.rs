//! rampart api
