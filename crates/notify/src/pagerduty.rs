//! PagerDuty Events API v2: incidents trigger, acknowledge and resolve one alert
//! (`dedup_key` = the message's key); a rolled-back rollout triggers an alert of
//! its own. Other rollout events are not pages and are skipped.

use rampart_config::NotifierConfig;
use rampart_core::notify::{Message, Severity, Topic};
use serde_json::{Map, Value, json};

use crate::channel::{Channel, ChannelContext, Outgoing, Rendered};
use crate::registry::ChannelRegistry;
use crate::text::{topic_title, truncate};

const SUMMARY_MAX: usize = 1024;
const DEDUP_KEY_MAX: usize = 255;

#[derive(Debug)]
pub(crate) struct PagerDuty {
    url: String,
    routing_key: String,
    context: ChannelContext,
}

pub(crate) fn register(registry: &mut ChannelRegistry) {
    registry.register("pagerduty", |config, context| match config {
        NotifierConfig::Pagerduty(pd) => Some(Box::new(PagerDuty {
            url: pd.url.clone(),
            routing_key: pd.routing_key.clone(),
            context: context.clone(),
        })),
        _ => None,
    });
}

/// PagerDuty's four severities.
pub fn pagerduty_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

fn event_action(topic: Topic) -> Option<&'static str> {
    match topic {
        Topic::IncidentOpened | Topic::IncidentEscalated | Topic::RolloutRolledBack => {
            Some("trigger")
        }
        Topic::IncidentAcknowledged => Some("acknowledge"),
        Topic::IncidentResolved => Some("resolve"),
        Topic::RolloutStarted
        | Topic::RolloutStepAdvanced
        | Topic::RolloutPaused
        | Topic::RolloutPromoted => None,
    }
}

impl PagerDuty {
    pub(crate) fn event(&self, message: &Message) -> Option<Value> {
        let action = event_action(message.topic)?;
        let dedup_key = truncate(&message.key, DEDUP_KEY_MAX);
        if action != "trigger" {
            return Some(json!({
                "routing_key": self.routing_key,
                "event_action": action,
                "dedup_key": dedup_key,
            }));
        }
        let mut details = Map::new();
        details.insert("topic".into(), message.topic.as_str().into());
        details.insert("rampart_severity".into(), message.severity.as_str().into());
        for (name, value) in &message.fields {
            details.insert(name.clone(), Value::String(value.clone()));
        }
        let source = message.service.as_deref().unwrap_or("rampart");
        let mut event = json!({
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": truncate(&message.summary, SUMMARY_MAX),
                "source": source,
                "severity": pagerduty_severity(message.severity),
                "timestamp": message.at,
                "component": source,
                "group": "rampart",
                "class": message.topic.as_str(),
                "custom_details": details,
            },
            "client": "rampart",
        });
        if let Some(link) = self.context.link(message) {
            event["links"] = json!([{ "href": link, "text": topic_title(message.topic) }]);
            event["client_url"] = Value::String(link);
        }
        Some(event)
    }
}

impl Channel for PagerDuty {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn render(&self, outgoing: &Outgoing<'_>) -> Option<Rendered> {
        let event = self.event(outgoing.message)?;
        Some(Rendered {
            url: self.url.clone(),
            headers: Vec::new(),
            body: event.to_string().into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd() -> PagerDuty {
        PagerDuty {
            url: "https://events.pagerduty.com/v2/enqueue".into(),
            routing_key: "0123456789abcdef0123456789abcdef".into(),
            context: ChannelContext::default(),
        }
    }

    fn message(topic: Topic, severity: Severity) -> Message {
        Message {
            topic,
            key: "incident-42".into(),
            service: Some("shop".into()),
            severity,
            summary: "x".repeat(2000),
            fields: vec![("rule".into(), "high_error_rate".into())],
            link: None,
            at: "2026-12-01T12:00:00Z".into(),
        }
    }

    #[test]
    fn trigger_carries_the_v2_payload() {
        let event = pd()
            .event(&message(Topic::IncidentOpened, Severity::High))
            .unwrap();
        assert_eq!(event["event_action"], "trigger");
        assert_eq!(event["dedup_key"], "incident-42");
        assert_eq!(event["payload"]["severity"], "error");
        assert_eq!(event["payload"]["source"], "shop");
        assert_eq!(
            event["payload"]["summary"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SUMMARY_MAX
        );
        assert_eq!(
            event["payload"]["custom_details"]["rule"],
            "high_error_rate"
        );
    }

    #[test]
    fn acknowledge_and_resolve_name_the_same_alert() {
        for (topic, action) in [
            (Topic::IncidentAcknowledged, "acknowledge"),
            (Topic::IncidentResolved, "resolve"),
        ] {
            let event = pd().event(&message(topic, Severity::Low)).unwrap();
            assert_eq!(event["event_action"], action);
            assert_eq!(event["dedup_key"], "incident-42");
            assert!(event.get("payload").is_none());
        }
    }

    #[test]
    fn severities_map_to_pagerdutys_four() {
        let mapped: Vec<_> = Severity::ALL.into_iter().map(pagerduty_severity).collect();
        assert_eq!(mapped, ["critical", "error", "warning", "info"]);
    }

    #[test]
    fn rollout_steps_are_not_pages() {
        assert!(
            pd().event(&message(Topic::RolloutStepAdvanced, Severity::Low))
                .is_none()
        );
        assert_eq!(
            pd().event(&message(Topic::RolloutRolledBack, Severity::High))
                .unwrap()["event_action"],
            "trigger"
        );
    }
}
