//! Resource use of one instance: its process and every descendant (an instance led
//! by `/bin/sh -c "a | b"` is several processes), read from `/proc` via `procfs`.

use std::collections::HashSet;

use serde::Serialize;

/// An instance's process tree has at most this many processes counted, so a fork
/// bomb costs telemetry a bounded amount of work.
const MAX_TREE: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessUsage {
    /// User + system CPU seconds of the live processes of the tree.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub processes: u64,
}

/// Sums the tree under `pid`; `None` when `pid` is gone.
pub fn tree_usage(pid: u32) -> Option<ProcessUsage> {
    let tps = procfs::ticks_per_second().max(1) as f64;
    let page = procfs::page_size();
    let mut usage = ProcessUsage::default();
    let mut seen = HashSet::new();
    let mut pending = vec![pid];
    let mut leader_found = false;
    while let Some(next) = pending.pop() {
        if seen.len() >= MAX_TREE || !seen.insert(next) {
            continue;
        }
        let Ok(process) = procfs::process::Process::new(next as i32) else {
            continue;
        };
        let Ok(stat) = process.stat() else {
            continue;
        };
        leader_found |= next == pid;
        usage.processes += 1;
        usage.cpu_seconds += (stat.utime + stat.stime) as f64 / tps;
        usage.rss_bytes += stat.rss * page;
        // Another user's process (or one exiting) may hide its fds; count what we see.
        usage.open_fds += process.fd_count().unwrap_or(0) as u64;
        if let Ok(tasks) = process.tasks() {
            for task in tasks.flatten() {
                if let Ok(children) = task.children() {
                    pending.extend(children);
                }
            }
        }
    }
    leader_found.then_some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_and_its_child_are_summed() {
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 5 & wait")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        // The shell forks `sleep`; wait until /proc shows it.
        let mut usage = None;
        for _ in 0..200 {
            usage = tree_usage(pid);
            if usage.is_some_and(|u| u.processes == 2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let usage = usage.expect("the shell runs");
        assert_eq!(usage.processes, 2, "{usage:?}");
        assert!(usage.rss_bytes > 0);
        assert!(usage.open_fds >= 2, "{usage:?}");
    }

    #[test]
    fn a_gone_process_has_no_usage() {
        let mut child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert_eq!(tree_usage(pid), None);
    }
}
