//! The readiness probe: one plain HTTP/1.1 `GET`, success on any 2xx.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One probe gets at most this long; a hung instance must not stall the poll loop.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `Ok` when `GET path` answers 2xx; otherwise why not, in words for an error message.
pub(crate) async fn probe(addr: SocketAddr, path: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, probe_once(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("GET {path} got no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn probe_once(addr: SocketAddr, path: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rampart\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("cannot send GET {path}: {err}"))?;

    // The status line is all we need; it fits in the first read of any real server,
    // but a byte-trickling one is read until the line ends.
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|err| format!("GET {path} failed: {err}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let status =
        parse_status(&head).ok_or_else(|| format!("GET {path} did not answer with HTTP"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn one_shot_server(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await.unwrap();
            socket.write_all(answer).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn any_2xx_is_ready() {
        let addr = one_shot_server(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(probe(addr, "/healthz").await, Ok(()));
    }

    #[tokio::test]
    async fn other_statuses_and_garbage_are_not() {
        let addr = one_shot_server(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(
            probe(addr, "/healthz").await,
            Err("GET /healthz answered 503".into())
        );
        let addr = one_shot_server(b"SSH-2.0-OpenSSH\r\n").await;
        assert!(
            probe(addr, "/healthz")
                .await
                .unwrap_err()
                .contains("did not answer with HTTP")
        );
    }

    #[tokio::test]
    async fn closed_port_is_a_connect_error() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        assert!(
            probe(addr, "/")
                .await
                .unwrap_err()
                .contains("cannot connect")
        );
    }
}
