use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the process backend must be created inside a Tokio runtime")]
    NoRuntime,
    #[error("backend is shut down; rampart is exiting")]
    ShutDown,
    #[error("cannot run version \"{version}\": {reason}")]
    InvalidSpec { version: String, reason: String },
    #[error("version \"{version}\" is not running")]
    UnknownVersion { version: String },
    #[error("the static backend cannot {action}: rampart does not run these upstreams")]
    Unsupported { action: &'static str },
    #[error("no free port on 127.0.0.1 for instance {instance}: {source}")]
    NoFreePort {
        instance: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start instance {instance} (`{command}`): {source}")]
    Spawn {
        instance: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("instance {instance} exited before it was ready ({status}){}", show_tail(.stderr_tail))]
    ExitedBeforeReady {
        instance: String,
        status: String,
        stderr_tail: String,
    },
    #[error("instance {instance} was not ready within {}: {last_error}{}", humanize(*.timeout), show_tail(.stderr_tail))]
    NotReady {
        instance: String,
        timeout: Duration,
        last_error: String,
        stderr_tail: String,
    },
    #[error("{addr} of version \"{version}\" does not accept connections: {reason}")]
    Unreachable {
        version: String,
        addr: SocketAddr,
        reason: String,
    },
    #[error(
        "start of instance {instance} was cancelled because a sibling instance failed or the backend stopped"
    )]
    Cancelled { instance: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

fn humanize(duration: Duration) -> String {
    format!("{duration:?}")
}

fn show_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        "; its stderr was empty".into()
    } else {
        format!("; last stderr lines:\n{}", tail.trim_end())
    }
}
