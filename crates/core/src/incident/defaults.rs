//! The three rules of the original specification, shipped as defaults. A rule of
//! the same name in the config replaces one; `enabled = false` removes it.

use crate::notify::Severity;

/// A default rule as the config would spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRule {
    pub name: &'static str,
    pub severity: Severity,
    pub when: &'static str,
    pub actions: &'static [&'static str],
}

pub const DEFAULT_RULES: &[DefaultRule] = &[
    DefaultRule {
        name: "high_error_rate",
        severity: Severity::High,
        when: "service.error_rate > 5% for 30s",
        actions: &["rollback", "circuit_breaker"],
    },
    DefaultRule {
        name: "system_overload",
        severity: Severity::High,
        when: "host.cpu > 90% and host.memory > 95% for 1m",
        actions: &["shed_load"],
    },
    DefaultRule {
        name: "security_breach_detected",
        severity: Severity::Critical,
        when: "security.failed_auth > 100/min",
        actions: &["lock_down"],
    },
];
