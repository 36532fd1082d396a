//! A tcp check: a connection to the address is accepted.

use std::io::ErrorKind;

use tokio::net::TcpStream;

use super::attempt::Attempt;

pub(crate) async fn probe(address: &str) -> Attempt {
    match TcpStream::connect(address).await {
        Ok(stream) => match stream.peer_addr() {
            Ok(peer) => Attempt::pass(format!("connected to {peer}")),
            Err(_) => Attempt::pass(format!("connected to {address}")),
        },
        Err(err) if err.kind() == ErrorKind::InvalidInput => Attempt::misconfigured(format!(
            "invalid address `{address}`: {err}; write host:port"
        )),
        Err(err) => Attempt::fail(format!("could not connect to {address}: {err}")),
    }
}
