//! What can go wrong when starting the router or changing its routing table.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("service \"{service}\": cannot listen on {addr}: {source}")]
    Bind {
        service: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("service \"{service}\": cannot serve TLS: {problem}")]
    Tls { service: String, problem: String },
    #[error("cannot start the router's worker threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("two services are named \"{0}\"; service names must be unique")]
    DuplicateService(String),
    #[error("canary weight {0} is not a percentage; use a number from 0 to 100")]
    InvalidWeight(f64),
    #[error("mirrored share {0} is not a percentage; use a number from 0 to 100")]
    InvalidMirror(f64),
    #[error(
        "`{0}` is not a valid HTTP header name for a canary match; use letters, digits and `-`, such as \"x-tester\""
    )]
    InvalidMatch(String),
    #[error("service \"{service}\": {addr} is not an instance of this service")]
    UnknownInstance { service: String, addr: SocketAddr },
    #[error(
        "service \"{service}\": {addr} is still serving traffic; remove it before waiting for its drain"
    )]
    NotDraining { service: String, addr: SocketAddr },
    #[error(
        "service \"{service}\": cannot remove {addr}: it is the last instance of the stable set"
    )]
    LastStableInstance { service: String, addr: SocketAddr },
}
