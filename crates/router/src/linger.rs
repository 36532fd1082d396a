//! Lingering close: a client connection that ends while the client is still sending
//! (an upstream answered before reading the whole request body, and hyper stopped
//! reading it) must not simply be closed. Closing a socket with unread data makes
//! the kernel send a reset instead of a FIN, and a client still writing its body can
//! then lose the response it was about to read. So, as nginx's `lingering_close`
//! does, the write side is shut (the client sees the response end) and whatever
//! still arrives is read and dropped, for a bounded time, before the socket closes.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The longest a closed connection is drained (nginx's `lingering_time` is 30 s;
/// a client that sees the response stops sending well within this).
const LINGER_TIME: Duration = Duration::from_secs(5);
/// A client that sends nothing for this long is done (nginx's `lingering_timeout`).
const LINGER_SILENCE: Duration = Duration::from_secs(1);
/// Lingering sockets one worker keeps at most; beyond, a connection closes plainly.
/// They no longer count against the per-client connection limit, so this bounds
/// what clients that keep sending to early answers can hold (a socket and 16 KiB
/// each).
const MAX_LINGERING_PER_WORKER: usize = 1024;

thread_local! {
    /// This worker's lingering sockets: each worker is one thread with a
    /// current-thread runtime, so a drain runs on the thread that counted it.
    static LINGERING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One lingering socket counted until its drain ends or is dropped.
struct Counted;

impl Counted {
    fn take() -> Option<Self> {
        LINGERING.with(|count| {
            (count.get() < MAX_LINGERING_PER_WORKER).then(|| {
                count.set(count.get() + 1);
                Counted
            })
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LINGERING.with(|count| count.set(count.get().saturating_sub(1)));
    }
}

/// The TCP socket under a client connection, plain or TLS.
pub(crate) trait ClientSocket {
    fn tcp(&self) -> &TcpStream;
}

impl ClientSocket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl ClientSocket for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Called as the connection's socket is dropped: when the client's bytes are still
/// arriving (some are waiting, or a request body was not read to its end), keeps
/// draining them on a duplicate of the socket, so the drop closes nothing yet;
/// otherwise the socket closes as usual.
pub(crate) fn on_close(tcp: &TcpStream, body_unread: bool) {
    // What the client sent after the connection ended is dropped in any case.
    let mut scratch = [0u8; 2048];
    match tcp.try_read(&mut scratch) {
        Ok(n) if n > 0 => {}
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock && body_unread => {}
        // Closed by the client, failed, or nothing more to come: a plain close.
        _ => return,
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(counted) = Counted::take() else {
        return;
    };
    let Ok(duplicate) = socket2::SockRef::from(tcp).try_clone() else {
        return;
    };
    // The FIN: the client's read of the response ends here, not at a reset.
    let _ = duplicate.shutdown(std::net::Shutdown::Write);
    runtime.spawn(async move {
        let _counted = counted;
        if let Ok(stream) = TcpStream::from_std(duplicate.into()) {
            drain(stream).await;
        }
    });
}

async fn drain(mut stream: TcpStream) {
    let until = Instant::now() + LINGER_TIME;
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        let silence_over = (Instant::now() + LINGER_SILENCE).min(until);
        match tokio::time::timeout_at(silence_over, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_lingers_on_a_bounded_number_of_sockets() {
        let held: Vec<Counted> = (0..MAX_LINGERING_PER_WORKER)
            .map(|_| Counted::take().expect("under the bound"))
            .collect();
        assert!(Counted::take().is_none(), "the bound is reached");
        drop(held);
        assert!(Counted::take().is_some(), "ended drains free their places");
    }
}
