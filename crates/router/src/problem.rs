//! Errors the router itself answers, as RFC 9457 `application/problem+json`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ProxyBody;

/// Why the router answered instead of an upstream; also the `problem` member of the
/// body, so clients and tests can tell the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// No connection to any instance could be made.
    UpstreamUnreachable,
    /// The upstream connection failed after the request was sent.
    UpstreamFailed,
    /// No response head within the request timeout.
    UpstreamTimeout,
    /// The service has no instance to send to.
    NoUpstream,
    /// The concurrency limit is reached.
    Overloaded,
    /// The request already passed through this router: an upstream points back at it.
    LoopDetected,
    /// The client's request body stalled for longer than `body_read_timeout`.
    ClientTimeout,
    /// The client's request body failed (the client went away mid-upload).
    ClientFailed,
    /// A CONNECT request: the router forwards requests, it does not open tunnels.
    ConnectNotSupported,
    /// A transfer coding other than chunked (`Transfer-Encoding: gzip, chunked`).
    TransferCodingNotSupported,
}

impl Problem {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Problem::UpstreamUnreachable | Problem::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Problem::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Problem::NoUpstream | Problem::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Problem::LoopDetected => StatusCode::LOOP_DETECTED,
            Problem::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Problem::ClientFailed => StatusCode::BAD_REQUEST,
            Problem::ConnectNotSupported | Problem::TransferCodingNotSupported => {
                StatusCode::NOT_IMPLEMENTED
            }
        }
    }

    fn code(self) -> &'static str {
        match self {
            Problem::UpstreamUnreachable => "upstream_unreachable",
            Problem::UpstreamFailed => "upstream_failed",
            Problem::UpstreamTimeout => "upstream_timeout",
            Problem::NoUpstream => "no_upstream",
            Problem::Overloaded => "overloaded",
            Problem::LoopDetected => "loop_detected",
            Problem::ClientTimeout => "client_timeout",
            Problem::ClientFailed => "client_failed",
            Problem::ConnectNotSupported => "connect_not_supported",
            Problem::TransferCodingNotSupported => "transfer_coding_not_supported",
        }
    }

    pub(crate) fn response(self, service: &str, detail: String) -> Response<ProxyBody> {
        let status = self.status();
        // `type` is about:blank, so `title` is the status phrase (RFC 9457 §4.2.1);
        // the `problem` extension member tells the cases apart.
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
            "problem": self.code(),
            "service": service,
        });
        let mut response = Response::new(ProxyBody::full(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self == Problem::Overloaded {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(
            self,
            Problem::ConnectNotSupported | Problem::TransferCodingNotSupported
        ) {
            // What the client sent after the head (data for a tunnel, a body in a
            // coding the router cannot frame) must never be read as a request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
