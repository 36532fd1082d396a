//! One server per data dir: a second `rampart serve` on the same data dir would kill
//! the first one's instances (as leftovers) and drive its rollouts twice.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Held for as long as the server runs; the kernel releases it when the process
/// ends, however it ends.
pub struct DataDirLock {
    _lock: Flock<File>,
}

pub fn lock(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    // Created private (0700), as the store would: this runs first.
    rampart_store::create_data_dir(data_dir)?;
    let path = data_dir.join("rampart.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            // The holder's pid, for the message a second server prints.
            lock.set_len(0).ok();
            lock.seek(SeekFrom::Start(0)).ok();
            let _ = write!(lock, "{}", std::process::id());
            Ok(DataDirLock { _lock: lock })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(anyhow!(
                "another rampart (pid {}) is already serving from {}; stop it first, or give this one its own data_dir",
                holder.trim(),
                data_dir.display()
            ))
        }
        Err((_, errno)) => Err(anyhow!("cannot lock {}: {errno}", path.display())),
    }
}
