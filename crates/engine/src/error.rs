//! What can go wrong when asking the engine to do something. Every message says what
//! to do about it.

use rampart_core::rollout::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no service named `{name}`; configured services: {known}")]
    UnknownService { name: String, known: String },

    #[error("no deployment with id `{0}`")]
    UnknownDeployment(String),

    #[error("no incident with id `{0}`")]
    UnknownIncident(String),

    #[error(
        "service `{service}` already has a rollout in progress (deployment {id}, {version}, {phase}); \
         wait for it, or promote, pause or abort it first"
    )]
    RolloutInProgress {
        service: String,
        id: String,
        version: String,
        phase: String,
    },

    #[error("service `{service}` has no rollout in progress to {action}")]
    NoActiveRollout { service: String, action: String },

    #[error("{0}")]
    InvalidRequest(String),

    #[error("{0}")]
    Conflict(String),

    /// rampart's own fault (not the request's): an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),

    #[error(transparent)]
    Transition(#[from] TransitionError),

    // The inner errors are shown in the message rather than as a source, so a
    // report that prints the source chain does not say the same thing twice.
    #[error("store: {0}")]
    Store(rampart_store::StoreError),

    #[error("backend: {0}")]
    Backend(rampart_backends::BackendError),

    #[error("router: {0}")]
    Router(rampart_router::RouterError),

    #[error("the engine is shutting down")]
    ShuttingDown,

    /// A file of rampart's own (in the data dir) could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl From<rampart_store::StoreError> for EngineError {
    fn from(e: rampart_store::StoreError) -> Self {
        EngineError::Store(e)
    }
}

impl From<rampart_backends::BackendError> for EngineError {
    fn from(e: rampart_backends::BackendError) -> Self {
        EngineError::Backend(e)
    }
}

impl From<rampart_router::RouterError> for EngineError {
    fn from(e: rampart_router::RouterError) -> Self {
        EngineError::Router(e)
    }
}
