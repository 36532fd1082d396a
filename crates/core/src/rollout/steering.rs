//! What a step does to traffic besides the weight: requests that match a header or a
//! cookie go to the canary (testers reach it without the split), and a share of the
//! requests the split sends to stable is mirrored to it (a copy whose response is
//! discarded, judged like the canary's own). Both leave the weight alone.

use serde::{Deserialize, Serialize};

/// Where a [`RequestMatch`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchSource {
    Header,
    Cookie,
}

/// How the value found there must look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum ValueMatch {
    /// Any value: the header or cookie is there.
    Present,
    Exact(String),
    Prefix(String),
}

impl ValueMatch {
    pub fn accepts(&self, value: &str) -> bool {
        match self {
            ValueMatch::Present => true,
            ValueMatch::Exact(text) => value == text,
            ValueMatch::Prefix(text) => value.starts_with(text.as_str()),
        }
    }
}

/// A request whose header (or cookie) `name` has a value that `value` accepts goes to
/// the canary. Header names compare case-insensitively, cookie names and values
/// exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMatch {
    pub source: MatchSource,
    pub name: String,
    pub value: ValueMatch,
}

/// The router's canary rules beyond the weight, as one step wants them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Steering {
    /// Requests that match go to the canary whatever the split says.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub canary_match: Option<RequestMatch>,
    /// Percent (0..=100) of the requests the split sends to stable that are also sent,
    /// as a copy, to the canary.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mirror_percent: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl Steering {
    /// No rule: the weight alone decides.
    pub fn is_none(&self) -> bool {
        self.canary_match.is_none() && self.mirror_percent == 0.0
    }

    /// For messages: "requests with header x-tester = yes, 20 % mirrored".
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = &self.canary_match {
            let source = match m.source {
                MatchSource::Header => "header",
                MatchSource::Cookie => "cookie",
            };
            let value = match &m.value {
                ValueMatch::Present => String::new(),
                ValueMatch::Exact(text) => format!(" = {text}"),
                ValueMatch::Prefix(text) => format!(" starting with {text}"),
            };
            parts.push(format!("requests with {source} {}{value}", m.name));
        }
        if self.mirror_percent > 0.0 {
            parts.push(format!("{} % of stable's mirrored", self.mirror_percent));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_as_written() {
        assert!(ValueMatch::Present.accepts(""));
        assert!(ValueMatch::Exact("yes".into()).accepts("yes"));
        assert!(!ValueMatch::Exact("yes".into()).accepts("yes please"));
        assert!(ValueMatch::Prefix("beta-".into()).accepts("beta-7"));
        assert!(!ValueMatch::Prefix("beta-".into()).accepts("alpha"));
    }

    #[test]
    fn describes_what_a_step_routes() {
        assert_eq!(Steering::default().describe(), None);
        let steering = Steering {
            canary_match: Some(RequestMatch {
                source: MatchSource::Header,
                name: "x-tester".into(),
                value: ValueMatch::Exact("yes".into()),
            }),
            mirror_percent: 20.0,
        };
        assert_eq!(
            steering.describe().as_deref(),
            Some("requests with header x-tester = yes, 20 % of stable's mirrored")
        );
    }
}
