//! Query templates: `{canary}` and `{stable}` stand for the two versions' names.
//! PromQL has braces of its own (`metric{label="x"}`), so only a brace pair holding
//! a bare word is a placeholder; a bare word other than these two is a mistake
//! (`{cannary}`), reported with its byte range.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A query with `{canary}` and/or `{stable}` in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueryTemplate(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{name}}}`; the placeholders are {{canary}} and {{stable}}")]
    UnknownPlaceholder { name: String, span: Range<usize> },
    #[error(
        "the query has no `{{canary}}`; without it the query cannot tell the canary's numbers from stable's"
    )]
    NoCanary,
    #[error("the query is empty")]
    Empty,
}

impl TemplateError {
    /// Byte range in the query text, when the error is about one place.
    pub fn span(&self) -> Option<Range<usize>> {
        match self {
            TemplateError::UnknownPlaceholder { span, .. } => Some(span.clone()),
            _ => None,
        }
    }
}

const CANARY: &str = "canary";
const STABLE: &str = "stable";

impl QueryTemplate {
    /// Checks the placeholders; the query must name `{canary}`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut has_canary = false;
        for (name, span) in placeholders(text) {
            match name {
                CANARY => has_canary = true,
                STABLE => {}
                other => {
                    return Err(TemplateError::UnknownPlaceholder {
                        name: other.to_string(),
                        span,
                    });
                }
            }
        }
        if !has_canary {
            return Err(TemplateError::NoCanary);
        }
        Ok(Self(text.to_string()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// The query about `subject` (the version whose numbers are wanted), with
    /// `{canary}` replaced by it and `{stable}` by `stable`. Rendering the same
    /// template for the stable version gives the comparison's other side.
    pub fn render(&self, subject: &str, stable: &str) -> String {
        let mut out = String::with_capacity(self.0.len() + subject.len());
        let mut rest = 0;
        for (name, span) in placeholders(&self.0) {
            out.push_str(&self.0[rest..span.start]);
            out.push_str(if name == CANARY { subject } else { stable });
            rest = span.end;
        }
        out.push_str(&self.0[rest..]);
        out
    }
}

/// Every `{word}` in `text` (word: letters, digits, `_`), with its byte range.
fn placeholders(text: &str) -> Vec<(&str, Range<usize>)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start && end < bytes.len() && bytes[end] == b'}' {
                found.push((&text[start..end], i..end + 1));
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    found
}
