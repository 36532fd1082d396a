//! Generic webhook: the message as JSON with its delivery context, signed with
//! HMAC-SHA256 when the notifier has a `secret`.
//!
//! Signature: `X-Rampart-Signature: sha256=<hex>` over `<timestamp>.<body>`, where
//! `<timestamp>` is the `X-Rampart-Timestamp` header (Unix seconds). A receiver
//! recomputes it with the shared secret, compares in constant time, and refuses
//! timestamps far from its clock (replays). `X-Rampart-Delivery` is the
//! notification's id, the same on every retry: delivery is at least once, so a
//! receiver deduplicates on it.

use hmac::{Hmac, Mac};
use rampart_config::NotifierConfig;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::channel::{Channel, ChannelContext, Outgoing, Rendered};
use crate::registry::ChannelRegistry;
use crate::text::subject_of;

pub const SIGNATURE_HEADER: &str = "x-rampart-signature";
pub const TIMESTAMP_HEADER: &str = "x-rampart-timestamp";
pub const DELIVERY_HEADER: &str = "x-rampart-delivery";

#[derive(Debug)]
pub(crate) struct Webhook {
    url: String,
    secret: Option<String>,
    context: ChannelContext,
}

pub(crate) fn register(registry: &mut ChannelRegistry) {
    registry.register("webhook", |config, context| match config {
        NotifierConfig::Webhook(hook) => Some(Box::new(Webhook {
            url: hook.url.clone(),
            secret: hook.secret.clone(),
            context: context.clone(),
        })),
        _ => None,
    });
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret, timestamp);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (the header's value) is right for this timestamp and body;
/// compares in constant time.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = mac(secret, timestamp);
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

fn mac(secret: &[u8], timestamp: i64) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac
}

impl Webhook {
    pub(crate) fn payload(&self, outgoing: &Outgoing<'_>) -> Value {
        let message = outgoing.message;
        let subject = subject_of(&message.key).map(|(kind, id)| json!({ "kind": kind, "id": id }));
        json!({
            "version": "1",
            "id": outgoing.id,
            "notifier": outgoing.notifier,
            "attempt": outgoing.attempt,
            "subject": subject,
            "link": self.context.link(message),
            "message": message,
        })
    }
}

impl Channel for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn render(&self, outgoing: &Outgoing<'_>) -> Option<Rendered> {
        let body = self.payload(outgoing).to_string().into_bytes();
        let mut headers = vec![(DELIVERY_HEADER, outgoing.id.to_string())];
        if let Some(secret) = &self.secret {
            headers.push((TIMESTAMP_HEADER, outgoing.sent_at.to_string()));
            headers.push((
                SIGNATURE_HEADER,
                sign(secret.as_bytes(), outgoing.sent_at, &body),
            ));
        }
        Some(Rendered {
            url: self.url.clone(),
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::notify::{Message, Severity, Topic};

    #[test]
    fn signature_verifies_and_detects_tampering() {
        let body = br#"{"a":1}"#;
        let signature = sign(b"0123456789abcdef", 1_700_000_000, body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), 7 + 64);
        assert!(verify(b"0123456789abcdef", 1_700_000_000, body, &signature));
        assert!(!verify(
            b"0123456789abcdef",
            1_700_000_001,
            body,
            &signature
        ));
        assert!(!verify(
            b"another secret!!",
            1_700_000_000,
            body,
            &signature
        ));
        assert!(!verify(
            b"0123456789abcdef",
            1_700_000_000,
            br#"{"a":2}"#,
            &signature
        ));
        assert!(!verify(b"0123456789abcdef", 1_700_000_000, body, "md5=00"));
    }

    #[test]
    fn known_answer() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1_700_000_000, b"{}"),
            format!(
                "sha256={}",
                hex::encode({
                    let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
                    mac.update(b"1700000000.{}");
                    mac.finalize().into_bytes()
                })
            )
        );
    }

    #[test]
    fn body_carries_the_message_and_its_subject() {
        let hook = Webhook {
            url: "http://127.0.0.1:1/hook".into(),
            secret: Some("0123456789abcdef".into()),
            context: ChannelContext::default(),
        };
        let message = Message {
            topic: Topic::IncidentOpened,
            key: "incident-7".into(),
            service: Some("shop".into()),
            severity: Severity::Critical,
            summary: "down".into(),
            fields: vec![],
            link: None,
            at: "2026-12-01T12:00:00Z".into(),
        };
        let outgoing = Outgoing {
            id: 9,
            notifier: "hook",
            attempt: 2,
            message: &message,
            sent_at: 1_700_000_000,
        };
        let rendered = hook.render(&outgoing).unwrap();
        let body: Value = serde_json::from_slice(&rendered.body).unwrap();
        assert_eq!(body["subject"], json!({ "kind": "incident", "id": "7" }));
        assert_eq!(body["message"]["topic"], "incident_opened");
        assert_eq!(body["attempt"], 2);
        let signature = &rendered
            .headers
            .iter()
            .find(|(name, _)| *name == SIGNATURE_HEADER)
            .unwrap()
            .1;
        assert!(verify(
            b"0123456789abcdef",
            1_700_000_000,
            &rendered.body,
            signature
        ));
    }
}
