//! Where versions run. One [`Backend`] trait, implemented by:
//!
//! - [`ProcessBackend`]: rampart starts the instances itself as local processes,
//!   health-checks them, restarts crashed ones, scales and stops them;
//! - [`StaticBackend`]: upstreams that already run somewhere; rampart only checks that
//!   they accept connections and never starts or stops them.
//!
//! A Kubernetes backend fits the same trait: `start` applies a workload and waits for
//! readiness, `subscribe` reports endpoint changes.

mod backend;
mod error;
mod ledger;
mod process;
mod static_backend;

use std::path::Path;
use std::sync::Arc;

use rampart_config::{BackendConfig, ServiceConfig};

pub use backend::{
    Backend, BackendEvent, BackendEventKind, BoxFuture, Instance, InstanceState, VersionSpec,
};
pub use error::BackendError;
pub use ledger::{InstanceLedger, InstanceRecord, ProcessOptions};
pub use process::{ProcessBackend, kill_leftovers_of_unconfigured};
pub use static_backend::StaticBackend;

/// Builds the backend a service's config asks for. `data_dir` holds pid files and
/// instance logs of the process backend. Must be called inside a Tokio runtime.
pub fn build(service: &ServiceConfig, data_dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
    build_with(service, data_dir, ProcessOptions::default())
}

/// [`build`], with what a process backend does with its instances beyond its life.
pub fn build_with(
    service: &ServiceConfig,
    data_dir: &Path,
    options: ProcessOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    match &service.backend {
        BackendConfig::Process(config) => Ok(Arc::new(ProcessBackend::with_options(
            &service.name,
            config.clone(),
            data_dir,
            options,
        )?)),
        BackendConfig::Static(config) => Ok(Arc::new(StaticBackend::new(
            config.clone(),
            service.router.connect_timeout.get(),
        ))),
    }
}
