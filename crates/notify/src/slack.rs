//! Slack incoming webhook: a Block Kit message (header, summary, service /
//! severity / reason fields, context, link button) with a plain `text` fallback
//! for notifications and clients that do not show blocks.

use rampart_config::NotifierConfig;
use rampart_core::notify::{Message, Severity};
use serde_json::{Value, json};

use crate::channel::{Channel, ChannelContext, Outgoing, Rendered};
use crate::registry::ChannelRegistry;
use crate::text::{topic_title, truncate};

// Block Kit limits: header text 150 characters, section text 3000, a field 2000,
// at most 10 fields in a section.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;

#[derive(Debug)]
pub(crate) struct Slack {
    url: String,
    context: ChannelContext,
}

pub(crate) fn register(registry: &mut ChannelRegistry) {
    registry.register("slack", |config, context| match config {
        NotifierConfig::Slack(slack) => Some(Box::new(Slack {
            url: slack.url.clone(),
            context: context.clone(),
        })),
        _ => None,
    });
}

/// Slack's mrkdwn needs only these three escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn severity_mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴",
        Severity::High => "🟠",
        Severity::Medium => "🟡",
        Severity::Low => "🔵",
    }
}

impl Slack {
    pub(crate) fn payload(&self, message: &Message) -> Value {
        let title = match &message.service {
            Some(service) => format!("{}: {service}", topic_title(message.topic)),
            None => topic_title(message.topic).to_string(),
        };
        let mut fields = Vec::new();
        if let Some(service) = &message.service {
            fields.push(("Service".to_string(), service.clone()));
        }
        fields.push((
            "Severity".to_string(),
            message.severity.as_str().to_string(),
        ));
        fields.extend(message.fields.iter().cloned());
        let fields: Vec<Value> = fields
            .iter()
            .take(FIELDS_MAX)
            .map(|(name, value)| {
                json!({
                    "type": "mrkdwn",
                    "text": truncate(&format!("*{}*\n{}", escape(name), escape(value)), FIELD_MAX),
                })
            })
            .collect();
        let mut blocks = vec![
            json!({
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(&format!("{} {title}", severity_mark(message.severity)), HEADER_MAX),
                    "emoji": true,
                },
            }),
            json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": truncate(&escape(&message.summary), SECTION_MAX) },
            }),
            json!({ "type": "section", "fields": fields }),
            json!({
                "type": "context",
                "elements": [{
                    "type": "mrkdwn",
                    "text": format!("rampart · `{}` · {} · {}", message.topic.as_str(), escape(&message.key), escape(&message.at)),
                }],
            }),
        ];
        if let Some(link) = self.context.link(message) {
            blocks.push(json!({
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "text": { "type": "plain_text", "text": "Open in rampart" },
                    "url": link,
                    "action_id": "open_in_rampart",
                }],
            }));
        }
        json!({
            "text": truncate(&format!("{title} ({}): {}", message.severity.as_str(), message.summary), SECTION_MAX),
            "blocks": blocks,
        })
    }
}

impl Channel for Slack {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn render(&self, outgoing: &Outgoing<'_>) -> Option<Rendered> {
        Some(Rendered {
            url: self.url.clone(),
            headers: Vec::new(),
            body: self.payload(outgoing.message).to_string().into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::notify::Topic;

    fn message() -> Message {
        Message {
            topic: Topic::RolloutRolledBack,
            key: "rollout-ab12".into(),
            service: Some("shop".into()),
            severity: Severity::High,
            summary: "shop v2 rolled back: error rate 9.8 % > 5 %".into(),
            fields: vec![("Reason".into(), "error rate <5%> & more".into())],
            link: Some("/api/v1/deployments/ab12".into()),
            at: "2026-12-01T12:00:00Z".into(),
        }
    }

    #[test]
    fn block_kit_with_fields_link_and_fallback() {
        let slack = Slack {
            url: "https://hooks.slack.com/services/T/B/X".into(),
            context: ChannelContext {
                public_url: Some("https://rampart.example.com/".into()),
            },
        };
        let payload = slack.payload(&message());
        assert_eq!(
            payload["text"],
            "Rollout rolled back: shop (high): shop v2 rolled back: error rate 9.8 % > 5 %"
        );
        let blocks = payload["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[2]["fields"][0]["text"], "*Service*\nshop");
        assert_eq!(blocks[2]["fields"][1]["text"], "*Severity*\nhigh");
        assert_eq!(
            blocks[2]["fields"][2]["text"],
            "*Reason*\nerror rate &lt;5%&gt; &amp; more"
        );
        assert_eq!(
            blocks[4]["elements"][0]["url"],
            "https://rampart.example.com/api/v1/deployments/ab12"
        );
    }

    #[test]
    fn no_button_without_a_public_url_and_long_text_is_cut() {
        let slack = Slack {
            url: "https://hooks.slack.com/services/T/B/X".into(),
            context: ChannelContext::default(),
        };
        let mut long = message();
        long.service = Some("s".repeat(400));
        long.fields = (0..20).map(|n| (format!("f{n}"), "v".into())).collect();
        let payload = slack.payload(&long);
        let blocks = payload["blocks"].as_array().unwrap();
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            HEADER_MAX
        );
        assert_eq!(blocks[2]["fields"].as_array().unwrap().len(), FIELDS_MAX);
    }
}
