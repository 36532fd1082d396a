//! Graceful upgrade, Pingora-style: a new rampart (`rampart serve --upgrade`, or
//! SIGUSR2 to the running one) connects to the running rampart over a Unix socket in
//! the data dir and receives, by descriptor passing (`SCM_RIGHTS`), every listening
//! socket (the API's and each service router's) and the data-dir lock. It adopts the
//! sockets exactly like systemd's (`rampart_router::listeners`), re-adopts the
//! instances from the store, resumes the rollouts in flight, and says `READY` once it
//! serves. Only then does the old rampart stop accepting, drain its requests and
//! keep-alive connections within the grace period, and exit, leaving the instances
//! running. A listening socket is one kernel object with one accept queue: both
//! processes accept from it during the overlap, so no connection is refused or lost.
//!
//! A new rampart that fails before `READY` (bad config, crash, a port it cannot
//! take) closes the connection; the old one then resumes as if nothing happened.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use rampart_engine::Engine;
use serde::{Deserialize, Serialize};

/// The socket's name in the data dir.
const SOCKET: &str = "upgrade.sock";
/// How long a new rampart may take from taking the sockets to serving (it re-adopts
/// instances and may have to launch dead ones, each within its ready timeout).
const READY_WITHIN: Duration = Duration::from_secs(300);
/// How long either side waits for the other's first word.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// The kernel passes at most this many descriptors in one message (SCM_MAX_FD).
const MAX_FDS: usize = 253;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    pid: u32,
    version: String,
}

/// What the old rampart hands over; descriptors in this order: the lock, the API
/// socket, then one per entry of `routers`.
#[derive(Debug, Serialize, Deserialize)]
struct Offer {
    pid: u32,
    version: String,
    api: SocketAddr,
    routers: Vec<SocketAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Offer(Offer),
    Refused(String),
}

// ---- the running rampart's side -------------------------------------------------

/// Listens for a successor on `<data_dir>/upgrade.sock` (private: the data dir is
/// 0700). The file a previous rampart left is replaced; only the data-dir lock's
/// holder gets here, so it is nobody's.
pub fn bind(data_dir: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    tokio::net::UnixListener::bind(&path).with_context(|| {
        format!(
            "cannot listen for upgrades on {} (a Unix socket path has at most 107 bytes: choose a shorter data_dir)",
            path.display()
        )
    })
}

/// What the running rampart hands over.
pub struct Holdings {
    pub engine: Engine,
    pub api: TcpListener,
    pub lock: File,
    /// Whether instances outlive this rampart: if not, they die with it and cannot
    /// be handed over.
    pub instances_outlive: bool,
}

/// Answers successors until one takes over; then resolves (the caller stops
/// serving). `handed_over` is set at that moment, so the data-dir lock is kept for
/// the successor when this process lets go of it.
pub async fn serve(
    listener: tokio::net::UnixListener,
    holdings: Holdings,
    handed_over: Arc<AtomicBool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade socket: accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match hand_over(stream, &holdings).await {
            Ok(successor) => {
                tracing::info!(
                    successor,
                    "the new rampart serves; this one stops accepting and drains"
                );
                handed_over.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "a graceful upgrade failed; this rampart carries on serving");
            }
        }
    }
}

async fn hand_over(stream: tokio::net::UnixStream, holdings: &Holdings) -> anyhow::Result<u32> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let (stream, hello) = blocking(move || {
        stream.set_read_timeout(Some(HELLO_WITHIN))?;
        let hello: Hello = serde_json::from_slice(&read_line(&stream)?)
            .context("the new rampart's greeting is not understood")?;
        Ok((stream, hello))
    })
    .await?;
    tracing::info!(pid = hello.pid, version = %hello.version, "a new rampart asks to take over");
    if !holdings.instances_outlive {
        let reason = "the running rampart has `instances_outlive = false`: its instances die with it, so it cannot hand them over; restart it instead (or set instances_outlive = true and restart once)".to_string();
        blocking(move || send(&stream, &Answer::Refused(reason), &[])).await?;
        bail!("refused: instances do not outlive this rampart");
    }
    holdings.engine.hold_for_handover().await;
    let offered = offer(stream, holdings).await;
    let stream = match offered {
        Ok(stream) => stream,
        Err(e) => {
            resume(holdings).await;
            return Err(e);
        }
    };
    let pid = hello.pid;
    let ready = blocking(move || {
        stream.set_read_timeout(Some(READY_WITHIN))?;
        let line = read_line(&stream)?;
        if line == b"READY" {
            Ok(())
        } else {
            Err(anyhow!(
                "the new rampart said {:?} instead of READY",
                String::from_utf8_lossy(&line)
            ))
        }
    })
    .await;
    match ready {
        Ok(()) => Ok(pid),
        Err(e) => {
            resume(holdings).await;
            Err(e.context(format!("the new rampart (pid {pid}) did not get to serve")))
        }
    }
}

async fn resume(holdings: &Holdings) {
    if let Err(e) = holdings.engine.resume_after_failed_handover().await {
        tracing::error!(error = %e, "resuming the rollouts after a failed upgrade failed; they resume at the next start");
    }
}

async fn offer(stream: UnixStream, holdings: &Holdings) -> anyhow::Result<UnixStream> {
    let routers = holdings
        .engine
        .router_sockets()
        .context("duplicating the router sockets")?;
    let mut fds: Vec<OwnedFd> = vec![
        holdings.lock.try_clone()?.into(),
        holdings.api.try_clone()?.into(),
    ];
    let mut addrs = Vec::with_capacity(routers.len());
    for socket in routers {
        addrs.push(socket.local_addr()?);
        fds.push(socket.into());
    }
    if fds.len() > MAX_FDS {
        bail!(
            "{} listening sockets are more than one message can pass ({MAX_FDS})",
            fds.len()
        );
    }
    let answer = Answer::Offer(Offer {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        api: holdings.api.local_addr()?,
        routers: addrs,
    });
    blocking(move || {
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        send(&stream, &answer, &raw)?;
        // Our copies close here; the successor holds its own.
        drop(fds);
        Ok(stream)
    })
    .await
}

// ---- the new rampart's side ------------------------------------------------------

/// The running rampart, waiting for this one to serve.
pub struct Predecessor {
    stream: UnixStream,
    pub pid: u32,
}

impl Predecessor {
    /// Tells the old rampart this one serves: it stops accepting and drains.
    pub fn serving(mut self) -> anyhow::Result<()> {
        self.stream
            .write_all(b"READY\n")
            .context("telling the old rampart to stop")
    }
}

/// Takes the listening sockets (offered to the router and the API like systemd's)
/// and the data-dir lock from the rampart serving from `data_dir`.
pub fn take_over(data_dir: &Path) -> anyhow::Result<(File, Predecessor)> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no running rampart to take over from at {} (is one serving from this data_dir?); start without --upgrade",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(READY_WITHIN))?;
    let hello = Hello {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut line = serde_json::to_vec(&hello)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let (answer, fds) = receive(&stream)?;
    let offer = match answer {
        Answer::Offer(offer) => offer,
        Answer::Refused(reason) => bail!("the running rampart refused the upgrade: {reason}"),
    };
    if fds.len() != offer.routers.len() + 2 {
        bail!(
            "the running rampart passed {} descriptors for {} sockets and its lock",
            fds.len(),
            offer.routers.len() + 1
        );
    }
    let mut fds = fds.into_iter();
    let lock = fds.next().map(File::from).context("no lock descriptor")?;
    for fd in fds {
        let listener = TcpListener::from(fd);
        rampart_router::listeners::offer(listener).context("adopting a passed socket")?;
    }
    tracing::info!(from = offer.pid, version = %offer.version, api = %offer.api, routers = ?offer.routers, "took the listening sockets over");
    Ok((
        lock,
        Predecessor {
            stream,
            pid: offer.pid,
        },
    ))
}

// ---- the wire ---------------------------------------------------------------------

fn read_line(mut stream: &UnixStream) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => bail!("the other rampart closed the connection"),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() > 64 * 1024 => bail!("the other rampart's line is too long"),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("the other rampart did not answer in time")
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One frame: a 4-byte length, the JSON, and `fds` attached to the first byte.
fn send(stream: &UnixStream, answer: &Answer, fds: &[RawFd]) -> anyhow::Result<()> {
    let json = serde_json::to_vec(answer)?;
    let mut frame = u32::try_from(json.len())?.to_le_bytes().to_vec();
    frame.extend_from_slice(&json);
    let rights = [ControlMessage::ScmRights(fds)];
    let control: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&frame)],
        control,
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)
    .context("passing the sockets")?;
    (&*stream)
        .write_all(&frame[sent..])
        .context("passing the sockets")?;
    Ok(())
}

fn receive(stream: &UnixStream) -> anyhow::Result<(Answer, Vec<OwnedFd>)> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (received, fds) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)
        .context("receiving the sockets")?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(passed) = cmsg {
                // SAFETY: the kernel just installed these descriptors in this
                // process for us alone.
                fds.extend(
                    passed
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            bail!("some passed descriptors were lost (control message truncated)");
        }
        (msg.bytes, fds)
    };
    if received == 0 {
        bail!("the running rampart closed the connection without handing over");
    }
    let mut frame = buffer[..received].to_vec();
    while frame.len() < 4 {
        frame.push(read_byte(stream)?);
    }
    let length = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    if frame.len() < 4 + length {
        let mut rest = vec![0u8; 4 + length - frame.len()];
        (&*stream).read_exact(&mut rest)?;
        frame.extend(rest);
    }
    let answer = serde_json::from_slice(&frame[4..4 + length])
        .context("the running rampart's answer is not understood (another version's protocol?)")?;
    Ok((answer, fds))
}

fn read_byte(mut stream: &UnixStream) -> anyhow::Result<u8> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(byte[0])
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the upgrade's worker thread failed")?
}

// ---- the trigger ------------------------------------------------------------------

/// SIGUSR2: start `rampart serve --upgrade` from the binary on disk (the new one, after
/// a package upgrade replaced it) with this process's config; it takes over.
pub fn spawn_successor(config: &Path) -> anyhow::Result<u32> {
    let exe = std::env::current_exe().context("locating the rampart executable")?;
    // Replaced on disk since we started: the path now names the new binary.
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    };
    let mut command = std::process::Command::new(&exe);
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--upgrade");
    // Its own process group: a Ctrl-C meant for the old one must not reach it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {} serve --upgrade", exe.display()))?;
    let pid = child.id();
    // Reaped if it fails while we still run; after we exit, init adopts it.
    std::thread::spawn(move || {
        if let Ok(status) = child.wait()
            && !status.success()
        {
            tracing::warn!(pid, %status, "the new rampart started by SIGUSR2 exited; this one carries on");
        }
    });
    Ok(pid)
}
