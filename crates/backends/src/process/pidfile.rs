//! Pid files under `<data_dir>/run/<service>/`, and killing what a previous rampart
//! run left behind.
//!
//! A pid file holds `<pid> <start time>`, the start time being field 22 of
//! `/proc/<pid>/stat` (clock ticks since boot). A recorded pid whose process now has
//! another start time was reused by an unrelated process and is left alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Writes `<pid> <start time>`; returns the start time.
pub(crate) fn write(path: &Path, pid: u32) -> io::Result<u64> {
    let start_time = process_start_time(pid)?;
    fs::write(path, format!("{pid} {start_time}\n"))?;
    Ok(start_time)
}

/// Whether process `pid` still is the one that started at `start_time` and has not
/// exited (a zombie waiting for its parent to reap it has).
pub(crate) fn alive(pid: u32, start_time: u64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let state = rest.split_whitespace().next().unwrap_or("");
    state != "Z" && state != "X" && parse_start_time(&stat) == Some(start_time)
}

/// Every pid file in `run_dir` with what it records.
pub(crate) fn entries(run_dir: &Path) -> io::Result<Vec<(PathBuf, u32, u64)>> {
    let entries = match fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path: PathBuf = entry?.path();
        if path.extension().is_some_and(|ext| ext == "pid")
            && let Some((pid, start)) = read(&path)
        {
            found.push((path, pid, start));
        }
    }
    Ok(found)
}

pub(crate) fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %path.display(), %err, "cannot remove pid file"),
    }
}

/// The start time of a live process, from `/proc/<pid>/stat`.
pub(crate) fn process_start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses; fields after the
    // last ')' are plain. Field 3 is the first of them, so field 22 is the 20th.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process groups recorded in `run_dir` by a previous run and removes their
/// pid files. Returns the groups killed.
///
/// A recorded leader that is alive with the recorded start time is ours. A leader
/// that is gone may have left group members behind (its grandchildren): the kernel
/// does not hand out a pid while a process group of that id exists, so a group with
/// the recorded id is the one we created (short of the pid being reused by another
/// group leader that then died too), and it is killed as well. A live
/// process with the recorded pid but another start time means the pid was reused
/// after our group had emptied; it is not touched.
pub(crate) fn kill_leftovers(run_dir: &Path) -> io::Result<Vec<u32>> {
    let entries = match fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut killed = Vec::new();
    for entry in entries {
        let path: PathBuf = entry?.path();
        if path.extension().is_none_or(|ext| ext != "pid") {
            continue;
        }
        if let Some((pid, recorded_start)) = read(&path) {
            let ours = match process_start_time(pid) {
                Ok(start) => start == recorded_start,
                Err(_) => true,
            };
            if ours && pid > 1 {
                match killpg(Pid::from_raw(pid as i32), Signal::SIGKILL) {
                    Ok(()) => {
                        tracing::warn!(pid, file = %path.display(), "killed instance left over from a previous run");
                        killed.push(pid);
                    }
                    Err(Errno::ESRCH) => {}
                    Err(err) => tracing::warn!(pid, %err, "cannot kill leftover process group"),
                }
            }
        }
        remove(&path);
    }
    Ok(killed)
}

fn read(path: &Path) -> Option<(u32, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    let start = fields.next()?.parse().ok()?;
    Some((pid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_start_time(stat), Some(987654));
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_ok());
    }
}
