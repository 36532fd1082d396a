//! How a failed outbound HTTP request is described to an operator: validation
//! checks, analysis metric providers and hooks all report it, in the same words.

use std::fmt::Display;

/// "could not connect to http://…: Connection refused (os error 111)" rather than
/// reqwest's outermost "error sending request".
pub(crate) fn describe_request_error(err: &reqwest::Error, url: &impl Display) -> String {
    if err.is_connect() {
        format!("could not connect to {url}: {}", root_cause(err))
    } else if err.is_timeout() {
        format!("request to {url} timed out: {}", root_cause(err))
    } else {
        format!("request to {url} failed: {}", root_cause(err))
    }
}

/// The innermost error's text: the one that names what actually failed.
pub(crate) fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
