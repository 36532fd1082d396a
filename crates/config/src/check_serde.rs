//! Reading a `[[service.check]]` table: the common keys and the kind's own keys are
//! side by side, and unknown keys are errors. serde cannot combine `flatten` with
//! `deny_unknown_fields`, so a check is read into one flat struct holding every
//! possible key and then checked against its kind.

use std::path::PathBuf;

use serde::Deserialize;

use crate::duration::Duration;
use crate::model::{
    CheckConfig, CheckKind, default_check_timeout, default_critical, default_expect_status,
    default_http_method, default_retry_backoff,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CheckKindName {
    Command,
    Http,
    Tcp,
    Prometheus,
}

impl CheckKindName {
    #[cfg(test)]
    pub(crate) const ALL: [CheckKindName; 4] =
        [Self::Command, Self::Http, Self::Tcp, Self::Prometheus];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Prometheus => "prometheus",
        }
    }
}

/// The keys that belong to one kind of check, besides the common ones.
pub(crate) fn own_keys(kind: CheckKindName) -> &'static [&'static str] {
    match kind {
        CheckKindName::Command => &["command", "working_dir"],
        CheckKindName::Http => &["url", "method", "expect_status", "body_contains"],
        CheckKindName::Tcp => &["address"],
        CheckKindName::Prometheus => &["url", "query", "expect"],
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    name: String,
    kind: CheckKindName,
    #[serde(default = "default_check_timeout")]
    timeout: Duration,
    #[serde(default)]
    retries: u32,
    #[serde(default = "default_retry_backoff")]
    retry_backoff: Duration,
    #[serde(default = "default_critical")]
    critical: bool,
    command: Option<String>,
    working_dir: Option<PathBuf>,
    url: Option<String>,
    method: Option<String>,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    address: Option<String>,
    query: Option<String>,
    expect: Option<String>,
}

impl TryFrom<RawCheck> for CheckConfig {
    type Error = String;

    fn try_from(raw: RawCheck) -> Result<Self, String> {
        let kind_label = raw.kind.as_str();
        let present = [
            ("command", raw.command.is_some()),
            ("working_dir", raw.working_dir.is_some()),
            ("url", raw.url.is_some()),
            ("method", raw.method.is_some()),
            ("expect_status", raw.expect_status.is_some()),
            ("body_contains", raw.body_contains.is_some()),
            ("address", raw.address.is_some()),
            ("query", raw.query.is_some()),
            ("expect", raw.expect.is_some()),
        ];
        let own_keys = own_keys(raw.kind);
        if let Some((stray, _)) = present
            .iter()
            .find(|(key, is_set)| *is_set && !own_keys.contains(key))
        {
            return Err(format!(
                "key `{stray}` does not apply to a {kind_label} check (its keys: {})",
                own_keys.join(", ")
            ));
        }
        let missing = |key: &str| format!("missing field `{key}` for a {kind_label} check");
        let kind = match raw.kind {
            CheckKindName::Command => CheckKind::Command {
                command: raw.command.ok_or_else(|| missing("command"))?,
                working_dir: raw.working_dir,
            },
            CheckKindName::Http => CheckKind::Http {
                url: raw.url.ok_or_else(|| missing("url"))?,
                method: raw.method.unwrap_or_else(default_http_method),
                expect_status: raw.expect_status.unwrap_or_else(default_expect_status),
                body_contains: raw.body_contains,
            },
            CheckKindName::Tcp => CheckKind::Tcp {
                address: raw.address.ok_or_else(|| missing("address"))?,
            },
            CheckKindName::Prometheus => CheckKind::Prometheus {
                url: raw.url.ok_or_else(|| missing("url"))?,
                query: raw.query.ok_or_else(|| missing("query"))?,
                expect: raw.expect.ok_or_else(|| missing("expect"))?,
            },
        };
        Ok(CheckConfig {
            name: raw.name,
            kind,
            timeout: raw.timeout,
            retries: raw.retries,
            retry_backoff: raw.retry_backoff,
            critical: raw.critical,
        })
    }
}
