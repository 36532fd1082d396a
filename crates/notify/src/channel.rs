//! The one trait every receiver kind implements.

use rampart_core::notify::Message;

/// What a channel is built with besides its own config.
#[derive(Debug, Clone, Default)]
pub struct ChannelContext {
    /// `[server] public_url`: turns a message's link path into an absolute URL.
    pub public_url: Option<String>,
}

impl ChannelContext {
    /// The message's link as an absolute URL, if it has one and rampart's public
    /// URL is known.
    pub fn link(&self, message: &Message) -> Option<String> {
        let path = message.link.as_deref()?;
        if path.starts_with("http://") || path.starts_with("https://") {
            return Some(path.to_string());
        }
        let base = self.public_url.as_deref()?;
        Some(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        ))
    }
}

/// One notification being sent.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The outbox row's id: the same on every retry, so receivers can deduplicate.
    pub id: i64,
    pub notifier: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub message: &'a Message,
    /// Unix seconds when the request is made (signed by webhooks).
    pub sent_at: i64,
}

/// One HTTP request, ready to POST.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// JSON.
    pub body: Vec<u8>,
}

/// A receiver kind (Slack, PagerDuty, webhook). Built from one `[[notifier]]` by the
/// [`crate::ChannelRegistry`].
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// The config's `kind`.
    fn kind(&self) -> &'static str;

    /// The request for `outgoing`, or `None` when this receiver has no use for the
    /// message's topic (PagerDuty takes incidents and rollbacks, not every rollout
    /// step); such a message is recorded as skipped.
    fn render(&self, outgoing: &Outgoing<'_>) -> Option<Rendered>;
}
