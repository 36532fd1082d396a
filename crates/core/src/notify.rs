//! What rampart tells people: the one message shape that incidents and rollouts
//! hand to the notifiers (Slack, PagerDuty, webhooks, email).
//!
//! The producer (the incident responder, the rollout controller) decides *what*
//! happened and writes a [`Message`] into the store's outbox in the same
//! transaction as the change it reports, so a committed change always has its
//! notification and a rolled-back one never does. Each channel decides *how* to
//! render it (Block Kit, Events API v2, signed JSON).

use serde::{Deserialize, Serialize};

/// Incident severity, highest first. PagerDuty maps these to
/// `critical`/`error`/`warning`/`info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a message is about. Incident topics share the incident's [`Message::key`],
/// so a channel with its own incident state (PagerDuty) can trigger, acknowledge
/// and resolve the same alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    IncidentOpened,
    IncidentAcknowledged,
    IncidentEscalated,
    IncidentResolved,
    RolloutStarted,
    RolloutStepAdvanced,
    RolloutPaused,
    RolloutPromoted,
    RolloutRolledBack,
}

impl Topic {
    pub fn is_incident(self) -> bool {
        matches!(
            self,
            Topic::IncidentOpened
                | Topic::IncidentAcknowledged
                | Topic::IncidentEscalated
                | Topic::IncidentResolved
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::IncidentOpened => "incident_opened",
            Topic::IncidentAcknowledged => "incident_acknowledged",
            Topic::IncidentEscalated => "incident_escalated",
            Topic::IncidentResolved => "incident_resolved",
            Topic::RolloutStarted => "rollout_started",
            Topic::RolloutStepAdvanced => "rollout_step_advanced",
            Topic::RolloutPaused => "rollout_paused",
            Topic::RolloutPromoted => "rollout_promoted",
            Topic::RolloutRolledBack => "rollout_rolled_back",
        }
    }
}

/// One notification, channel-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub topic: Topic,
    /// Groups the messages about one thing: `incident-<id>` or `rollout-<id>`.
    /// PagerDuty's `dedup_key`.
    pub key: String,
    pub service: Option<String>,
    pub severity: Severity,
    /// One line, e.g. "high_error_rate on shop: error rate 9.8 % > 5 % for 30 s".
    pub summary: String,
    /// Ordered name/value pairs shown as fields (reason, versions, weight, rule…).
    pub fields: Vec<(String, String)>,
    /// Path on rampart's API or dashboard, e.g. `/api/v1/incidents/42`; channels
    /// prefix it with the configured public URL when there is one.
    pub link: Option<String>,
    /// When the reported change happened, RFC 3339.
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_names_round_trip() {
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
        assert_eq!(Severity::parse("urgent"), None);
    }

    #[test]
    fn severities_order_highest_first() {
        assert!(Severity::Critical < Severity::High);
        assert!(Severity::Medium < Severity::Low);
    }

    #[test]
    fn message_serialises_with_snake_case_topic() {
        let message = Message {
            topic: Topic::RolloutRolledBack,
            key: "rollout-ab12".into(),
            service: Some("shop".into()),
            severity: Severity::High,
            summary: "shop v2 rolled back".into(),
            fields: vec![("reason".into(), "error rate".into())],
            link: None,
            at: "2026-12-01T12:00:00Z".into(),
        };
        let json = serde_json::to_value(&message).expect("serialises");
        assert_eq!(json["topic"], "rollout_rolled_back");
        assert_eq!(json["severity"], "high");
        let back: Message = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, message);
    }
}
