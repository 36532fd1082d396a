//! What one attempt of a check found.

use rampart_config::Duration as ConfigDuration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub passed: bool,
    pub message: String,
    pub output: Option<String>,
    /// False when the check is misconfigured, so trying again cannot help.
    pub retryable: bool,
}

impl Attempt {
    pub fn pass(message: impl Into<String>) -> Self {
        Self {
            passed: true,
            message: message.into(),
            output: None,
            retryable: false,
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            passed: false,
            message: message.into(),
            output: None,
            retryable: true,
        }
    }

    /// A failure that no retry can fix, such as an invalid URL or comparison.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::fail(message)
        }
    }

    pub fn timed_out(timeout: ConfigDuration) -> Self {
        Self::fail(format!("timed out after {timeout}"))
    }

    pub fn with_output(self, output: Option<String>) -> Self {
        Self { output, ..self }
    }
}
