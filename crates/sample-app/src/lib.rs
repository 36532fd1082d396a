//! A small HTTP service whose failures are under the caller's control: error rate,
//! latency, connections closed without an answer (`--reset-percent`), "fail after N
//! requests" and "crash after N requests". rampart's demos and
//! tests deploy it as a real service; users reach it as `rampart sample-app ...`.
//!
//! Endpoints: `GET /` answers `hello from <version>`, `GET /version` a JSON document,
//! `GET /healthz` answers `ok` (never subject to injected errors or latency), any
//! other path 404. Every answer, injected failures included, names the version in
//! the [`VERSION_HEADER`] header, so a load generator can count per version.

mod app;
mod args;
mod error;
mod server;

pub use args::SampleAppArgs;
pub use error::SampleAppError;
pub use server::{run, serve};

/// The response header naming the version that answered, e.g. `x-app-version: v2`.
pub const VERSION_HEADER: &str = "x-app-version";
