//! Listening sockets rampart did not open itself: those its service manager passes
//! (systemd socket activation, `LISTEN_FDS`), kept by address until the part of
//! rampart that listens there (the API, a service's router) takes its own.
//!
//! A socket that outlives the process is what keeps a restart from refusing
//! connections: while rampart is down the kernel queues them on the socket the
//! service manager holds, and the next rampart accepts them.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};

static INHERITED: Mutex<Option<HashMap<SocketAddr, TcpListener>>> = Mutex::new(None);

fn inherited() -> MutexGuard<'static, Option<HashMap<SocketAddr, TcpListener>>> {
    // A panic while holding the map cannot leave it half-changed: keep using it.
    INHERITED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes the sockets of `LISTEN_FDS` (when `LISTEN_PID` is this process) and unsets
/// the variables, so that instances rampart starts do not believe them theirs.
/// Returns the addresses they listen on.
///
/// # Safety
/// Changes the environment: call before any other thread exists (before the async
/// runtime starts).
pub unsafe fn adopt_from_service_manager() -> io::Result<Vec<SocketAddr>> {
    // SAFETY: the caller guarantees no other thread reads the environment.
    let fds: Vec<RawFd> = unsafe { sd_notify::listen_fds_and_unset_env() }?.collect();
    let mut adopted = Vec::with_capacity(fds.len());
    let mut map = inherited();
    let map = map.get_or_insert_with(HashMap::new);
    for fd in fds {
        // SAFETY: systemd passes these descriptors to this process to own; each is
        // taken once (listen_fds marked them close-on-exec).
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        let addr = listener.local_addr().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("LISTEN_FDS: descriptor {fd} is not a listening TCP socket: {e}"),
            )
        })?;
        adopted.push(addr);
        map.insert(addr, listener);
    }
    Ok(adopted)
}

/// Makes `listener` available to [`take`], as if the service manager had passed it.
pub fn offer(listener: TcpListener) -> io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    inherited()
        .get_or_insert_with(HashMap::new)
        .insert(addr, listener);
    Ok(addr)
}

/// The inherited socket listening on exactly `addr`, if any; each is handed out once.
pub fn take(addr: SocketAddr) -> Option<TcpListener> {
    inherited().as_mut()?.remove(&addr)
}

/// Addresses of inherited sockets nobody took (a config that no longer listens
/// there): worth a warning, since connections queue on them unanswered.
pub fn unclaimed() -> Vec<SocketAddr> {
    inherited()
        .as_ref()
        .map(|map| map.keys().copied().collect())
        .unwrap_or_default()
}

/// A socket listening on `addr`: the inherited one if there is one, else a new one.
pub async fn bind_or_take(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    match take(addr) {
        Some(listener) => {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_offered_socket_is_taken_once_by_its_address() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = offer(listener).expect("offer");
        assert!(unclaimed().contains(&addr));
        let taken = bind_or_take(addr).await.expect("take");
        assert_eq!(taken.local_addr().expect("addr"), addr);
        assert!(take(addr).is_none(), "handed out once");
        // The inherited socket accepts: a connection made before it was taken
        // (queued by the kernel) is served.
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, connected) = tokio::join!(taken.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
    }
}
