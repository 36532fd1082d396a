//! Exit codes: 0 ok, 1 failure, 2 usage or configuration error.

use std::fmt;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;

/// An error that knows which exit code it means.
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: USAGE,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        Self {
            code: FAILURE,
            error: e.into(),
        }
    }
}

impl CliError {
    /// What the user sees on stderr. A config error is already a complete report
    /// (each problem starts with "error:"), so it is not prefixed again.
    pub fn report(&self) -> String {
        match self.error.downcast_ref::<rampart_config::ConfigError>() {
            Some(config) => config.to_string(),
            None => format!("error: {self}"),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
