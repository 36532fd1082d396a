//! An upstream's address as written: an IP address and port ("127.0.0.1:9001",
//! "[::1]:9001") or a host name and port ("api.internal:9001", "localhost:8081").
//! Names are resolved by the engine at start (a name that does not resolve stops the
//! start) and again on the backend's `resolve_every`.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamAddress {
    Ip(SocketAddr),
    Name { host: String, port: u16 },
}

impl UpstreamAddress {
    /// Why `text` is not an upstream address, or the address.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::Ip(addr));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(
                "expected a host and a port, such as \"127.0.0.1:9001\" or \"api.internal:9001\"",
            );
        };
        let port: u16 = port
            .parse()
            .map_err(|_| "the port must be a number from 1 to 65535")?;
        if port == 0 {
            return Err("the port must be a number from 1 to 65535");
        }
        if !is_host_name(host) {
            return Err(
                "the host must be an IP address (IPv6 in brackets) or a host name of letters, digits, `-` and `.`",
            );
        }
        Ok(Self::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The address itself when it is written as an IP address.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(addr) => Some(*addr),
            Self::Name { .. } => None,
        }
    }

    pub fn is_name(&self) -> bool {
        matches!(self, Self::Name { .. })
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and `-`, no label
/// starting or ending with `-`, at most 253 characters.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // All digits and dots is a malformed IP address, not a name.
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl fmt::Display for UpstreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for UpstreamAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::Ip(addr)
    }
}

impl std::str::FromStr for UpstreamAddress {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for UpstreamAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UpstreamAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_host_names() {
        assert_eq!(
            UpstreamAddress::parse("127.0.0.1:9001"),
            Ok(UpstreamAddress::Ip("127.0.0.1:9001".parse().unwrap()))
        );
        assert!(UpstreamAddress::parse("[::1]:9001").unwrap().ip().is_some());
        assert_eq!(
            UpstreamAddress::parse("LocalHost:8081"),
            Ok(UpstreamAddress::Name {
                host: "localhost".into(),
                port: 8081
            })
        );
        assert!(UpstreamAddress::parse("api.internal-1.example:443").is_ok());
        for bad in [
            "localhost",
            "localhost:0",
            "localhost:http",
            ":8080",
            "-bad.example:80",
            "a..b:80",
            "256.1.1.1:80",
            "under_score:80",
            "::1:80",
        ] {
            assert!(UpstreamAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
