//! Processes rampart finds at start that no record claims: the leftovers of a
//! previous rampart (a pid file whose instance the store no longer names, a process
//! listening on a recorded instance's port after that instance died). Each is
//! stopped, SIGTERM first, so the port and the resources are free again.

use std::fs;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::pidfile;

/// How often a stopped process is looked at while it is given time to exit.
const POLL: Duration = Duration::from_millis(50);

/// SIGTERM to the process group led by `pid` (if it still is the process that started
/// at `start_time`), up to `grace` to exit, then SIGKILL to the group.
pub(crate) async fn stop_group(pid: u32, start_time: u64, grace: Duration) {
    if pid <= 1 || !pidfile::alive(pid, start_time) {
        return;
    }
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while pidfile::alive(pid, start_time) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    match killpg(group, Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => tracing::warn!(pid, %err, "cannot kill a leftover process group"),
    }
}

/// SIGTERM to one process, up to `grace`, then SIGKILL.
pub(crate) async fn stop_process(pid: u32, grace: Duration) {
    let Ok(start_time) = pidfile::process_start_time(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    let target = Pid::from_raw(pid as i32);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while pidfile::alive(pid, start_time) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if pidfile::alive(pid, start_time) {
        let _ = kill(target, Signal::SIGKILL);
        while pidfile::alive(pid, start_time) && tokio::time::Instant::now() < deadline + grace {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The process listening on 127.0.0.1:`port` (TCP), if one this user can see does:
/// the socket's inode from `/proc/net/tcp`, then the process holding it among
/// `/proc/<pid>/fd`.
pub(crate) fn listener_on(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.push(inode);
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_on(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listener_on(port), None);
    }
}
