//! Small predicates on single values (names, addresses, URLs, tokens), kept apart
//! from where they are applied so each is easy to test.

use std::net::{IpAddr, SocketAddr};

/// Service names appear in URLs and metric labels.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A valid name close to `name`: lowercase, other characters turned into `-`.
pub(crate) fn name_like(name: &str) -> String {
    let mut out = String::new();
    for ch in name.trim().chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-' {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "web".into()
    } else {
        trimmed.into()
    }
}

/// Whether two listeners would fight over a port. An unspecified IPv4 address covers
/// every IPv4 address; an unspecified IPv6 one covers both families (Linux binds
/// `[::]` dual-stack by default). Port 0 asks the OS for a free port, so never clashes.
pub(crate) fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers = |wide: IpAddr, other: IpAddr| match wide {
        IpAddr::V4(ip) => ip.is_unspecified() && other.is_ipv4(),
        IpAddr::V6(ip) => ip.is_unspecified(),
    };
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

/// A cookie name must be an RFC 6265 token: visible ASCII without separators.
pub(crate) fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

pub(crate) fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

pub(crate) fn is_http_method(method: &str) -> bool {
    !method.is_empty() && http::Method::from_bytes(method.as_bytes()).is_ok()
}

/// Why `url` is not an absolute http(s) URL, if it is not.
pub(crate) fn http_url_problem(url: &str) -> Option<&'static str> {
    if !url.contains("://") {
        return Some("missing scheme: start it with http:// or https://");
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Some("not a valid URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Some("the scheme must be http or https"),
        None => return Some("missing scheme: start it with http:// or https://"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some("missing host");
    }
    None
}

/// Why `address` is not `host:port`, if it is not.
pub(crate) fn host_port_problem(address: &str) -> Option<&'static str> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Some("missing `:port`");
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Some("missing host");
    }
    if host.contains(':') && host.parse::<IpAddr>().is_err() || host.contains(char::is_whitespace) {
        return Some("not a host name or IP address");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Some("the port must be a number from 1 to 65535"),
        Ok(_) => None,
    }
}

/// Whether a Prometheus `expect` reads like "< 0.01": a comparison and a number.
pub(crate) fn is_comparison(expect: &str) -> bool {
    let text = expect.trim();
    ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| text.strip_prefix(op))
        .is_some_and(|number| number.trim().parse::<f64>().is_ok_and(f64::is_finite))
}

/// The `{…}` placeholders of a command template that are not known ones.
pub(crate) fn unknown_placeholders<'a>(command: &'a str, known: &[&str]) -> Vec<&'a str> {
    let mut unknown = Vec::new();
    let mut rest = command;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let looks_like_placeholder = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if looks_like_placeholder && !known.contains(&inner) {
            unknown.push(&rest[open..open + close + 2]);
        }
        rest = &after[close + 1..];
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn names_are_lowercase_digits_dash_underscore() {
        assert!(is_valid_name("checkout-v2_eu"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Checkout"));
        assert!(!is_valid_name("check out"));
        assert!(!is_valid_name("café"));
        assert_eq!(name_like("My Web App!"), "my-web-app");
        assert_eq!(name_like("!!"), "web");
    }

    #[test]
    fn unspecified_addresses_clash_with_specific_ones_on_the_same_port() {
        assert!(listeners_overlap(
            addr("127.0.0.1:80"),
            addr("127.0.0.1:80")
        ));
        assert!(listeners_overlap(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(listeners_overlap(addr("127.0.0.1:80"), addr("0.0.0.0:80")));
        assert!(listeners_overlap(addr("[::]:80"), addr("127.0.0.1:80")));
        assert!(!listeners_overlap(addr("0.0.0.0:80"), addr("[::1]:80")));
        assert!(!listeners_overlap(
            addr("127.0.0.1:80"),
            addr("127.0.0.2:80")
        ));
        assert!(!listeners_overlap(
            addr("127.0.0.1:80"),
            addr("127.0.0.1:81")
        ));
        assert!(!listeners_overlap(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }

    #[test]
    fn cookie_names_and_header_names() {
        assert!(is_cookie_token("rampart_version"));
        assert!(!is_cookie_token("rampart version"));
        assert!(!is_cookie_token("a=b"));
        assert!(!is_cookie_token(""));
        assert!(is_header_name("x-rampart-version"));
        assert!(!is_header_name("x rampart"));
        assert!(!is_header_name(""));
        assert!(is_http_method("GET"));
        assert!(!is_http_method("GE T"));
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert_eq!(http_url_problem("http://127.0.0.1:9001/healthz"), None);
        assert_eq!(http_url_problem("https://example.test"), None);
        assert!(http_url_problem("ftp://example.test").is_some());
        assert!(http_url_problem("/healthz").is_some());
        assert!(http_url_problem("http://").is_some());
        assert!(http_url_problem("not a url").is_some());
        assert_eq!(
            http_url_problem("127.0.0.1:8080/healthz"),
            Some("missing scheme: start it with http:// or https://")
        );
        assert_eq!(
            http_url_problem("http://exa mple/"),
            Some("not a valid URL")
        );
    }

    #[test]
    fn tcp_addresses_are_host_and_port() {
        assert_eq!(host_port_problem("127.0.0.1:5432"), None);
        assert_eq!(host_port_problem("db.internal:5432"), None);
        assert_eq!(host_port_problem("[::1]:5432"), None);
        assert!(host_port_problem("127.0.0.1").is_some());
        assert!(host_port_problem(":5432").is_some());
        assert!(host_port_problem("db:0").is_some());
        assert!(host_port_problem("db:http").is_some());
    }

    #[test]
    fn comparisons_and_placeholders() {
        assert!(is_comparison("< 0.01"));
        assert!(is_comparison(">=5"));
        assert!(!is_comparison("0.01"));
        assert!(!is_comparison("< lots"));
        let known = ["version", "port", "instance"];
        assert_eq!(
            unknown_placeholders("srv --port {prot} --v {version} {}", &known),
            vec!["{prot}"]
        );
        assert!(unknown_placeholders("jq '{a: 1}' {port}", &known).is_empty());
    }
}
