//! One hook's POST: a timeout per attempt, retries with backoff, and an answer a
//! person can read ("`gate`: HTTP 500 closed for the weekend").

use std::time::Duration;

use rampart_config::WebhookHook;
use reqwest::{Client, redirect};
use serde_json::Value;

use crate::request_error::describe_request_error;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How much of a response body an answer quotes.
const ANSWER_LIMIT: usize = 200;

/// How a hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// A 2xx status.
    pub ok: bool,
    /// "`gate`: HTTP 500 closed", "`gate`: could not connect: …", with attempts.
    pub text: String,
}

/// Which failures are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryOn {
    /// Anything that is not a 2xx (notifications, pre-rollout).
    AnyFailure,
    /// Only timeouts and connection errors: a confirm hook's non-2xx is its answer.
    TransportErrors,
}

pub(crate) fn client() -> Result<Client, String> {
    // Hooks address the user's own endpoints: no proxy from the environment, no
    // redirects (the status judged is the hook's own).
    Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("could not create an HTTP client: {e}"))
}

pub(crate) async fn post(
    client: &Client,
    hook: &WebhookHook,
    payload: &Value,
    retry_on: RetryOn,
) -> Answer {
    let attempts = hook.retries.saturating_add(1);
    let mut backoff = Duration::from_millis(500);
    let mut last = Answer {
        ok: false,
        text: String::new(),
    };
    for attempt in 1..=attempts {
        let (answer, transport_error) = post_once(client, hook, payload).await;
        last = answer;
        let retry = match retry_on {
            RetryOn::AnyFailure => !last.ok,
            RetryOn::TransportErrors => transport_error,
        };
        if !retry || attempt == attempts {
            if attempt > 1 {
                last.text
                    .push_str(&format!(" (attempt {attempt} of {attempts})"));
            }
            return last;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    last
}

/// One attempt; the flag says whether it failed before any HTTP answer.
async fn post_once(client: &Client, hook: &WebhookHook, payload: &Value) -> (Answer, bool) {
    let name = &hook.name;
    let mut request = client
        .post(&hook.url)
        .timeout(hook.timeout.get())
        .json(payload);
    for (key, value) in &hook.headers {
        request = request.header(key, value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let mut text = format!("`{name}`: HTTP {}", status.as_u16());
            let body = one_line(&body);
            if !body.is_empty() {
                text.push(' ');
                text.push_str(&body);
            }
            (
                Answer {
                    ok: status.is_success(),
                    text,
                },
                false,
            )
        }
        Err(e) => {
            let what = if e.is_timeout() {
                format!("no answer within {}", hook.timeout)
            } else {
                describe_request_error(&e, &hook.url)
            };
            (
                Answer {
                    ok: false,
                    text: format!("`{name}`: {what}"),
                },
                true,
            )
        }
    }
}

/// A body's start on one line, bounded: answers end up in events and `status`.
fn one_line(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= ANSWER_LIMIT {
        return flat;
    }
    let mut cut: String = flat.chars().take(ANSWER_LIMIT).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_quote_the_body_on_one_bounded_line() {
        assert_eq!(
            one_line("closed\n  for the weekend\n"),
            "closed for the weekend"
        );
        let long = "x".repeat(500);
        let quoted = one_line(&long);
        assert!(quoted.ends_with('…'));
        assert_eq!(quoted.chars().count(), ANSWER_LIMIT + 1);
        assert_eq!(one_line(""), "");
    }
}
