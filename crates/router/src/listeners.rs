//! Listening sockets rampart did not open itself: those its service manager passes
//! (systemd socket activation, `LISTEN_FDS`), kept by address until the part of
//! rampart that listens there (the API, a service's router) takes its own.
//!
//! A socket that outlives the process is what keeps a restart from refusing
//! connections: while rampart is down the kernel queues them on the socket the
//! service manager holds, and the next rampart accepts them.
//!
//! A service's router listens on a group of `SO_REUSEPORT` sockets, one per worker
//! ([`bind_group`]), so the kernel spreads new connections over the workers (one
//! socket shared by all of them hands nearly every connection of a burst to whichever
//! worker wakes first). Each socket has its own accept queue, and closing one resets
//! the connections queued on it — so every socket of a group is kept and handed over
//! together on a graceful upgrade (several sockets per address), and a worker may
//! accept on several ([`Accepting`]). Sockets a service manager or an older rampart
//! passes are used as they are: when fewer than the workers, workers share them. The
//! groups of all services together stay within a budget (`router.rs`), so a handover
//! can still pass every socket in one message.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use socket2::{Domain, Protocol, Socket, Type};

/// Inherited sockets by address; several for one address when a group was passed.
type Inherited = HashMap<SocketAddr, Vec<TcpListener>>;

static INHERITED: Mutex<Option<Inherited>> = Mutex::new(None);

fn inherited() -> MutexGuard<'static, Option<Inherited>> {
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
        map.entry(addr).or_default().push(listener);
    }
    Ok(adopted)
}

/// Makes `listener` available to [`take`], as if the service manager had passed it.
/// Several sockets of one address (a group) are kept together.
pub fn offer(listener: TcpListener) -> io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    inherited()
        .get_or_insert_with(HashMap::new)
        .entry(addr)
        .or_default()
        .push(listener);
    Ok(addr)
}

/// An inherited socket listening on exactly `addr`, if any; each is handed out once.
pub fn take(addr: SocketAddr) -> Option<TcpListener> {
    let mut map = inherited();
    let map = map.as_mut()?;
    let sockets = map.get_mut(&addr)?;
    let first = (!sockets.is_empty()).then(|| sockets.remove(0));
    if sockets.is_empty() {
        map.remove(&addr);
    }
    first
}

/// Every inherited socket listening on exactly `addr`.
fn take_all(addr: SocketAddr) -> Vec<TcpListener> {
    inherited()
        .as_mut()
        .and_then(|map| map.remove(&addr))
        .unwrap_or_default()
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

/// The sockets a service's router listens on at `addr`: all the inherited ones (a
/// predecessor passes its whole group), else a new group of one `SO_REUSEPORT` socket
/// per worker. Inherited sockets are never joined by new ones: a socket this process
/// adds would close with it, and a crash would then reset the connections queued on
/// it, where a socket the service manager keeps holds them for the next rampart.
/// Non-blocking, at least one.
pub(crate) fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<Vec<TcpListener>> {
    let inherited = take_all(addr);
    if !inherited.is_empty() {
        for socket in &inherited {
            socket.set_nonblocking(true)?;
        }
        return Ok(inherited);
    }
    // A plain bind first, so an address another process listens on — even one in an
    // `SO_REUSEPORT` group of its own user — fails as it always did, instead of
    // silently sharing its connections.
    let probe = TcpListener::bind(addr)?;
    let local = probe.local_addr()?;
    drop(probe);
    let mut group = vec![reuse_port_listener(local)?];
    while group.len() < workers {
        match reuse_port_listener(local) {
            Ok(socket) => group.push(socket),
            Err(error) => {
                // The workers share what there is.
                tracing::warn!(%local, %error, "could not open another SO_REUSEPORT socket; router workers share the listener");
                break;
            }
        }
    }
    Ok(group)
}

fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    // As `TcpListener::bind`: `IPV6_V6ONLY` left to the system (`[::]` takes IPv4
    // too by default), `SO_REUSEADDR` on, a backlog of 1024 as tokio's.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The sockets of `group` each of `workers` accepts on: worker `i` takes every
/// `workers`-th socket from the `i`-th (so every socket has a worker), or shares a
/// duplicate when there are fewer sockets than workers.
pub(crate) fn share_out(
    group: &[TcpListener],
    workers: usize,
) -> io::Result<Vec<Vec<TcpListener>>> {
    (0..workers)
        .map(|worker| {
            if group.len() >= workers {
                group
                    .iter()
                    .skip(worker)
                    .step_by(workers)
                    .map(TcpListener::try_clone)
                    .collect()
            } else {
                Ok(vec![group[worker % group.len()].try_clone()?])
            }
        })
        .collect()
}

/// The listening sockets one worker accepts on for a service (usually one).
pub(crate) struct Accepting {
    sockets: Vec<tokio::net::TcpListener>,
    /// Where the next poll starts, so no socket is favoured.
    next: AtomicUsize,
}

impl Accepting {
    /// Registers the sockets with the calling thread's runtime.
    pub(crate) fn from_std(sockets: Vec<TcpListener>) -> io::Result<Self> {
        let sockets = sockets
            .into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<io::Result<Vec<_>>>()?;
        if sockets.is_empty() {
            return Err(io::Error::other("no listening socket"));
        }
        Ok(Self {
            sockets,
            next: AtomicUsize::new(0),
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
        if let [only] = self.sockets.as_slice() {
            return only.accept().await;
        }
        std::future::poll_fn(|cx| {
            let count = self.sockets.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for offset in 0..count {
                if let Poll::Ready(accepted) =
                    self.sockets[(start + offset) % count].poll_accept(cx)
                {
                    return Poll::Ready(accepted);
                }
            }
            Poll::Pending
        })
        .await
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

    #[tokio::test]
    async fn a_new_group_has_a_socket_per_worker_and_refuses_a_second_owner() {
        let group = bind_group("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        assert_eq!(group.len(), 3);
        let addr = group[0].local_addr().expect("addr");
        assert!(group.iter().all(|s| s.local_addr().ok() == Some(addr)));
        // Another process (or service) on the same address fails as before.
        let again = bind_group(addr, 3).expect_err("the address is taken");
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        // Every connection is accepted on one of the group's sockets.
        let shares = share_out(&group, 3).expect("share");
        assert!(shares.iter().all(|mine| mine.len() == 1));
        let accepting: Vec<Accepting> = shares
            .into_iter()
            .map(|mine| Accepting::from_std(mine).expect("register"))
            .collect();
        let clients: Vec<_> = (0..24)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let mut accepted = 0;
        for socket in &accepting {
            while let Ok(Ok(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(50), socket.accept()).await
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, clients.len());
    }

    #[tokio::test]
    async fn an_inherited_group_is_taken_whole_and_shared_out() {
        let group = bind_group("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        let addr = group[0].local_addr().expect("addr");
        for socket in group {
            offer(socket).expect("offer");
        }
        // A successor with fewer workers takes all three: none is left to close with
        // connections queued on it.
        let inherited = bind_group(addr, 2).expect("take");
        assert_eq!(inherited.len(), 3);
        assert!(take(addr).is_none());
        let shares = share_out(&inherited, 2).expect("share");
        assert_eq!((shares[0].len(), shares[1].len()), (2, 1));
        // With fewer sockets than workers, the workers share duplicates.
        let one = vec![inherited[0].try_clone().expect("dup")];
        let shared = share_out(&one, 2).expect("share");
        assert!(shared.iter().all(|mine| mine.len() == 1));
        // A single worker accepts on every socket of the group.
        let mut all = share_out(&inherited, 1).expect("share");
        let worker = Accepting::from_std(all.remove(0)).expect("register");
        let clients: Vec<_> = (0..12)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        for _ in &clients {
            tokio::time::timeout(std::time::Duration::from_secs(5), worker.accept())
                .await
                .expect("accepted in time")
                .expect("accepted");
        }
    }
}
