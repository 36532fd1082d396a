//! Header rewriting between client and upstream: hop-by-hop removal (RFC 9110 §7.6.1)
//! and the forwarding headers (`X-Forwarded-For`, `X-Forwarded-Proto`, RFC 7239
//! `Forwarded`).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// True for an HTTP/1.1 upgrade request or response (`Connection: upgrade` plus
/// `Upgrade`), such as a WebSocket handshake.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has_token(headers, "upgrade")
}

/// The first transfer coding of the request other than `chunked`, if any. hyper
/// takes only a list that ends in chunked and decodes just that framing.
pub(crate) fn transfer_coding_besides_chunked(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
        };
        let other = text
            .split(',')
            .map(str::trim)
            .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("chunked"));
        if let Some(coding) = other {
            return Some(coding.to_string());
        }
    }
    None
}

fn connection_has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names. With
/// `keep_upgrade`, `Upgrade` survives and `Connection: upgrade` is set again, because
/// an upgrade must be negotiated end to end through the proxy.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: one pass over the names is far cheaper than
    // a hashed removal per hop-by-hop name.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop_or_upgrade) {
        return;
    }
    // Only the names present are removed: a removal by a name given as text parses
    // and hashes it, and `Connection: keep-alive` (sent by browsers and most client
    // libraries) would otherwise cost nine of them per request.
    let listed = || {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            if *name == header::UPGRADE {
                return !keep_upgrade;
            }
            HOP_BY_HOP.contains(&name.as_str())
                || listed().any(|token| token.eq_ignore_ascii_case(name.as_str()))
        })
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_hop_by_hop_or_upgrade(name: &HeaderName) -> bool {
    name == header::UPGRADE || HOP_BY_HOP.contains(&name.as_str())
}

/// Marks every request this process forwards, with a token of this process, so a
/// request that comes back (an upstream address that is one of our own listeners) is
/// recognised and refused instead of forwarded again and again. Another rampart in
/// front of or behind this one has another token and is not a loop.
const FORWARDED_MARKER: HeaderName = HeaderName::from_static("x-rampart-forwarded");

fn process_token() -> &'static HeaderValue {
    static TOKEN: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        HeaderValue::try_from(format!("{:016x}", rand::random::<u64>()))
            .unwrap_or_else(|_| HeaderValue::from_static("rampart"))
    })
}

/// Adds this process's forwarding marker.
pub(crate) fn mark_forwarded(headers: &mut HeaderMap) {
    headers.append(FORWARDED_MARKER, process_token().clone());
}

/// True when this process has already forwarded the request once.
pub(crate) fn forwarded_by_us(headers: &HeaderMap) -> bool {
    let token = process_token().as_bytes();
    headers
        .get_all(FORWARDED_MARKER)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii() == token)
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// A client's address as the forwarding headers write it, formatted once per
/// connection instead of once per request.
#[derive(Debug)]
pub(crate) struct ClientIp {
    /// `X-Forwarded-For`'s element: the bare address.
    xff: HeaderValue,
    /// `Forwarded`'s `for=` parameter (RFC 7239 quotes an IPv6 address in brackets).
    forwarded_for: String,
}

impl ClientIp {
    /// The formatted address of a new connection's client. Connections from one
    /// address tend to come in runs (a load balancer, a client opening several), so
    /// each worker thread keeps the last one it formatted: formatting costs about a
    /// tenth of what a short connection costs rampart beyond its request.
    pub(crate) fn for_connection(ip: IpAddr) -> std::sync::Arc<Self> {
        thread_local! {
            static LAST: std::cell::RefCell<Option<(IpAddr, std::sync::Arc<ClientIp>)>> =
                const { std::cell::RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| match last {
            Some((cached, client)) if *cached == ip => std::sync::Arc::clone(client),
            _ => {
                let client = std::sync::Arc::new(Self::new(ip));
                *last = Some((ip, std::sync::Arc::clone(&client)));
                client
            }
        })
    }

    pub(crate) fn new(ip: IpAddr) -> Self {
        let text = ip.to_string();
        let forwarded_for = match ip {
            IpAddr::V4(_) => format!("for={text}"),
            IpAddr::V6(_) => format!("for=\"[{text}]\""),
        };
        Self {
            xff: HeaderValue::try_from(text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_for,
        }
    }
}

/// Appends the client to `X-Forwarded-For` and `Forwarded`, and sets
/// `X-Forwarded-Proto` when no proxy in front of us did. Each value is written into
/// one buffer: this runs for every request.
pub(crate) fn add_forwarding(
    headers: &mut HeaderMap,
    client: &ClientIp,
    host: Option<&str>,
    proto: &'static str,
) {
    let mut previous = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    let xff = if previous.peek().is_none() {
        client.xff.clone()
    } else {
        let mut xff = String::with_capacity(48);
        for previous in previous {
            xff.push_str(previous);
            xff.push_str(", ");
        }
        xff.push_str(client.xff.to_str().unwrap_or_default());
        HeaderValue::try_from(xff).unwrap_or_else(|_| client.xff.clone())
    };
    headers.insert(X_FORWARDED_FOR, xff);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
    let mut forwarded =
        String::with_capacity(client.forwarded_for.len() + 16 + host.map_or(0, |h| h.len() + 8));
    forwarded.push_str(&client.forwarded_for);
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    if let Some(host) = host {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
    }
    if let Ok(value) = HeaderValue::try_from(forwarded) {
        headers.append(header::FORWARDED, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_transfer_coding_besides_chunked() {
        let mut h = HeaderMap::new();
        assert_eq!(transfer_coding_besides_chunked(&h), None);
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("Chunked"),
        );
        assert_eq!(transfer_coding_besides_chunked(&h), None);
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip , chunked"),
        );
        assert_eq!(transfer_coding_besides_chunked(&h).as_deref(), Some("gzip"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.append(header::TRANSFER_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(transfer_coding_besides_chunked(&h).as_deref(), Some("br"));
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn strips_what_every_connection_line_names_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("X-One"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" keep-alive ,x-two"),
        );
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("x-three", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-three"]);

        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-one"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-one", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert!(!h.contains_key("x-one"));
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn keeps_an_upgrade_end_to_end() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn recognises_only_its_own_marker() {
        let mut h = HeaderMap::new();
        assert!(!forwarded_by_us(&h));
        h.append(
            "x-rampart-forwarded",
            HeaderValue::from_static("0123456789abcdef"),
        );
        assert!(!forwarded_by_us(&h), "another rampart's marker");
        mark_forwarded(&mut h);
        assert!(forwarded_by_us(&h));
        let joined = format!(
            "0123456789abcdef, {}",
            h.get_all("x-rampart-forwarded")
                .iter()
                .nth(1)
                .unwrap()
                .to_str()
                .unwrap()
        );
        let mut folded = HeaderMap::new();
        folded.insert(
            "x-rampart-forwarded",
            HeaderValue::try_from(joined).unwrap(),
        );
        assert!(forwarded_by_us(&folded));
    }

    #[test]
    fn a_run_of_connections_from_one_client_shares_its_formatted_address() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let first = ClientIp::for_connection(a);
        assert!(std::sync::Arc::ptr_eq(&first, &ClientIp::for_connection(a)));
        let other = ClientIp::for_connection(b);
        assert_eq!(other.xff, "2001:db8::1");
        assert_eq!(other.forwarded_for, "for=\"[2001:db8::1]\"");
        let again = ClientIp::for_connection(a);
        assert_eq!(again.xff, "192.0.2.1");
        assert_eq!(again.forwarded_for, "for=192.0.2.1");
    }

    #[test]
    fn appends_to_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let client = ClientIp::new("127.0.0.1".parse().unwrap());
        add_forwarding(&mut h, &client, Some("shop.test"), "http");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h[header::FORWARDED],
            "for=127.0.0.1;proto=http;host=\"shop.test\""
        );
        let mut v6 = HeaderMap::new();
        add_forwarding(
            &mut v6,
            &ClientIp::new("::1".parse().unwrap()),
            None,
            "http",
        );
        assert_eq!(v6[header::FORWARDED], "for=\"[::1]\";proto=http");
        assert_eq!(v6["x-forwarded-for"], "::1");
        assert_eq!(v6["x-forwarded-proto"], "http");
    }
}
