use std::net::SocketAddr;

/// Why the sample app could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum SampleAppError {
    #[error("invalid {flag}: {reason}")]
    InvalidArgument { flag: &'static str, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `--crash-after` was reached; this is the requested outcome, not a bug.
    #[error("crashed on purpose after {requests} requests (--crash-after)")]
    Crashed { requests: u64 },
}

impl SampleAppError {
    /// Exit status of a process that crashed on purpose (`--crash-after`).
    pub const CRASH_EXIT_CODE: i32 = 3;

    /// The process exit status this error should end in.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Crashed { .. } => Self::CRASH_EXIT_CODE,
            Self::InvalidArgument { .. } => 2,
            Self::Bind { .. } => 1,
        }
    }
}
