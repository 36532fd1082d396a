//! An http check: the response has the expected status and, optionally, its body
//! contains a given text. Also the HTTP client shared with the prometheus check.

use reqwest::{Client, Method, Response, Url, redirect};

use super::attempt::Attempt;
use super::tail::OUTPUT_LIMIT;
use crate::request_error::{describe_request_error, root_cause};

/// How much of a body is read; a check looking for a text searches this much.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;

pub(crate) async fn probe(
    url: &str,
    method: &str,
    expect_status: u16,
    body_contains: Option<&str>,
) -> Attempt {
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return Attempt::misconfigured(format!("invalid HTTP method `{method}`"));
    };
    let url = match parse_url(url) {
        Ok(url) => url,
        Err(attempt) => return attempt,
    };
    let client = match client() {
        Ok(client) => client,
        Err(attempt) => return attempt,
    };
    let response = match client.request(method, url.clone()).send().await {
        Ok(response) => response,
        Err(err) => return Attempt::fail(describe_request_error(&err, &url)),
    };
    let status = response.status().as_u16();
    let body = match read_body(response).await {
        Ok(body) => body,
        Err(err) => {
            return Attempt::fail(format!(
                "got {status}, then reading the body failed: {}",
                root_cause(&err)
            ));
        }
    };
    let attempt = judge(status, expect_status, body_contains, &body);
    attempt.with_output(body.excerpt())
}

fn judge(status: u16, expect_status: u16, body_contains: Option<&str>, body: &Body) -> Attempt {
    if status != expect_status {
        return Attempt::fail(format!("expected {expect_status}, got {status}"));
    }
    let Some(needle) = body_contains else {
        return Attempt::pass(format!("got {status}"));
    };
    if contains(&body.bytes, needle.as_bytes()) {
        Attempt::pass(format!("got {status}, body contains {needle:?}"))
    } else if body.truncated {
        Attempt::fail(format!(
            "got {status} but the first {} KiB of the body do not contain {needle:?}",
            BODY_LIMIT / 1024
        ))
    } else {
        Attempt::fail(format!(
            "got {status} but the body does not contain {needle:?}"
        ))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

pub(crate) fn parse_url(url: &str) -> Result<Url, Attempt> {
    Url::parse(url).map_err(|err| Attempt::misconfigured(format!("invalid URL `{url}`: {err}")))
}

/// A client for one attempt. Redirects are not followed, so the status judged is the
/// one the endpoint answers; no proxy is used, because checks address the service's own
/// endpoints and a proxy picked up from the environment would test something else.
pub(crate) fn client() -> Result<Client, Attempt> {
    Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|err| {
            Attempt::fail(format!(
                "could not create an HTTP client: {}",
                root_cause(&err)
            ))
        })
}

pub(crate) struct Body {
    pub bytes: Vec<u8>,
    /// The body was longer than [`BODY_LIMIT`] and the rest was not read.
    pub truncated: bool,
}

impl Body {
    /// The start of the body as text, bounded for storage; `None` when empty.
    pub fn excerpt(&self) -> Option<String> {
        if self.bytes.is_empty() {
            return None;
        }
        let shown = &self.bytes[..self.bytes.len().min(OUTPUT_LIMIT)];
        let mut text = String::from_utf8_lossy(shown).into_owned();
        if self.truncated || shown.len() < self.bytes.len() {
            text.push_str("\n[rest of the body not kept]");
        }
        Some(text)
    }
}

pub(crate) async fn read_body(mut response: Response) -> Result<Body, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = BODY_LIMIT - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Body {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        Body {
            bytes: text.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn judges_status_then_body() {
        assert!(judge(200, 200, None, &body("")).passed);
        let wrong_status = judge(503, 200, Some("ok"), &body("ok"));
        assert!(!wrong_status.passed);
        assert_eq!(wrong_status.message, "expected 200, got 503");
        assert!(judge(200, 200, Some("ready"), &body("{\"state\":\"ready\"}")).passed);
        let missing = judge(200, 200, Some("ready"), &body("starting"));
        assert!(!missing.passed);
        assert_eq!(
            missing.message,
            "got 200 but the body does not contain \"ready\""
        );
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = Body {
            bytes: vec![b'x'; OUTPUT_LIMIT + 10],
            truncated: false,
        };
        let excerpt = long.excerpt().unwrap();
        assert!(excerpt.ends_with("[rest of the body not kept]"));
        assert!(excerpt.len() < OUTPUT_LIMIT + 100);
        assert_eq!(body("").excerpt(), None);
    }
}
