//! A step's header or cookie match, compiled once per table so that testing a request
//! is a header lookup and a string compare.

use http::header::{self, HeaderMap, HeaderName};
use rampart_core::rollout::{MatchSource, RequestMatch, ValueMatch};

#[derive(Debug)]
pub(crate) enum CanaryMatch {
    Header { name: HeaderName, value: ValueMatch },
    Cookie { name: String, value: ValueMatch },
}

impl CanaryMatch {
    /// `None` for a header name HTTP cannot carry: such a match can never hold (the
    /// config and the API refuse it before it gets here).
    pub(crate) fn compile(rule: &RequestMatch) -> Option<Self> {
        Some(match rule.source {
            MatchSource::Header => CanaryMatch::Header {
                name: HeaderName::from_bytes(rule.name.as_bytes()).ok()?,
                value: rule.value.clone(),
            },
            MatchSource::Cookie => CanaryMatch::Cookie {
                name: rule.name.clone(),
                value: rule.value.clone(),
            },
        })
    }

    pub(crate) fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            CanaryMatch::Header { name, value } => headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| value.accepts(v.trim())),
            CanaryMatch::Cookie { name, value } => headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .any(|(k, v)| k == name && value.accepts(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rule(source: MatchSource, name: &str, value: ValueMatch) -> CanaryMatch {
        CanaryMatch::compile(&RequestMatch {
            source,
            name: name.into(),
            value,
        })
        .expect("valid rule")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn a_header_matches_by_name_in_any_case_and_exact_value() {
        let m = rule(
            MatchSource::Header,
            "X-Tester",
            ValueMatch::Exact("yes".into()),
        );
        assert!(m.matches(&headers(&[("x-tester", "yes")])));
        assert!(!m.matches(&headers(&[("x-tester", "no")])));
        assert!(!m.matches(&headers(&[])));
        // Any of repeated fields may match.
        assert!(m.matches(&headers(&[("x-tester", "no"), ("x-tester", "yes")])));
    }

    #[test]
    fn a_cookie_matches_among_others() {
        let m = rule(MatchSource::Cookie, "beta", ValueMatch::Present);
        assert!(m.matches(&headers(&[("cookie", "a=1; beta=on")])));
        assert!(m.matches(&headers(&[("cookie", "a=1"), ("cookie", "beta=")])));
        assert!(!m.matches(&headers(&[("cookie", "alpha=1; betamax=2")])));
        let prefix = rule(
            MatchSource::Cookie,
            "plan",
            ValueMatch::Prefix("pro".into()),
        );
        assert!(prefix.matches(&headers(&[("cookie", "plan=pro-annual")])));
        assert!(!prefix.matches(&headers(&[("cookie", "plan=free")])));
    }

    #[test]
    fn a_header_name_http_cannot_carry_compiles_to_nothing() {
        let bad = RequestMatch {
            source: MatchSource::Header,
            name: "not a header".into(),
            value: ValueMatch::Present,
        };
        assert!(CanaryMatch::compile(&bad).is_none());
    }
}
