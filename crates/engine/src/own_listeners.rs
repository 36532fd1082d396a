//! rampart's own listeners (the API, each service's router), so that a canary address
//! given through the API never points back into rampart: requests to such a canary
//! would loop through the router, be served by the stable version, count as the
//! canary's, and promote the router itself as the stable set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

/// A listener and what it is, for the error message.
#[derive(Debug, Clone)]
struct Listener {
    addr: SocketAddr,
    what: String,
}

#[derive(Debug, Default)]
pub(crate) struct OwnListeners {
    listeners: Mutex<Vec<Listener>>,
}

impl OwnListeners {
    pub fn add(&self, addr: SocketAddr, what: impl Into<String>) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Listener {
                addr,
                what: what.into(),
            });
    }

    /// What of rampart's listens where `target` leads, if anything does.
    pub fn reached_by(&self, target: SocketAddr) -> Option<String> {
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let local = local_ips();
        listeners
            .iter()
            .find(|l| reaches(target, l.addr, &local))
            .map(|l| format!("{} ({})", l.what, l.addr))
    }
}

/// Whether connecting to `target` reaches a socket listening on `listener`. A
/// listener on an unspecified address (`0.0.0.0`, `[::]`) takes every local
/// address of its port; connecting to an unspecified address reaches loopback.
fn reaches(target: SocketAddr, listener: SocketAddr, local: &[IpAddr]) -> bool {
    if target.port() != listener.port() || listener.port() == 0 {
        return false;
    }
    let to = connect_ip(target.ip());
    let on = canonical(listener.ip());
    if on.is_unspecified() {
        let family_ok = on.is_ipv6() || to.is_ipv4();
        return family_ok && (to.is_loopback() || local.contains(&to));
    }
    to == on
}

/// The address a connection to `ip` really goes to.
fn connect_ip(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// This host's interface addresses (a wildcard listener answers on each of them).
fn local_ips() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| interface.address)
        .filter_map(|address| {
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address
                    .as_sockaddr_in6()
                    .map(|v6| canonical(IpAddr::V6(v6.ip())))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn exact_and_wildcard_listeners_are_reached() {
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        let local = [lan];
        assert!(reaches(
            addr("127.0.0.1:8180"),
            addr("127.0.0.1:8180"),
            &local
        ));
        assert!(!reaches(
            addr("127.0.0.1:8181"),
            addr("127.0.0.1:8180"),
            &local
        ));
        // A wildcard listener answers on loopback and on every interface address.
        assert!(reaches(
            addr("127.0.0.1:8180"),
            addr("0.0.0.0:8180"),
            &local
        ));
        assert!(reaches(
            addr("127.0.0.2:8180"),
            addr("0.0.0.0:8180"),
            &local
        ));
        assert!(reaches(addr("10.1.2.3:8180"), addr("0.0.0.0:8180"), &local));
        assert!(reaches(addr("[::1]:8180"), addr("[::]:8180"), &local));
        assert!(reaches(addr("10.1.2.3:8180"), addr("[::]:8180"), &local));
        // ... but not on other hosts' addresses, and 0.0.0.0 takes no IPv6.
        assert!(!reaches(
            addr("10.9.9.9:8180"),
            addr("0.0.0.0:8180"),
            &local
        ));
        assert!(!reaches(addr("[::1]:8180"), addr("0.0.0.0:8180"), &local));
        // Connecting to the unspecified address reaches loopback.
        assert!(reaches(
            addr("0.0.0.0:8180"),
            addr("127.0.0.1:8180"),
            &local
        ));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(reaches(
            addr("[::ffff:127.0.0.1]:8180"),
            addr("127.0.0.1:8180"),
            &local
        ));
        // A loopback listener is reached only at its own address.
        assert!(!reaches(
            addr("127.0.0.2:8180"),
            addr("127.0.0.1:8180"),
            &local
        ));
    }

    #[test]
    fn the_listener_is_named() {
        let own = OwnListeners::default();
        own.add(addr("127.0.0.1:7070"), "the API");
        own.add(addr("0.0.0.0:8180"), "service `web`'s router");
        assert_eq!(
            own.reached_by(addr("127.0.0.1:8180")).as_deref(),
            Some("service `web`'s router (0.0.0.0:8180)")
        );
        assert_eq!(
            own.reached_by(addr("127.0.0.1:7070")).as_deref(),
            Some("the API (127.0.0.1:7070)")
        );
        assert_eq!(own.reached_by(addr("127.0.0.1:9003")), None);
    }
}
