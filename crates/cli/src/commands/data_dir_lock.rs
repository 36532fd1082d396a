//! One server per data dir: a second `rampart serve` on the same data dir would kill
//! the first one's instances (as leftovers) and drive its rollouts twice.
//!
//! The lock is a `flock` on `rampart.lock`, which belongs to the open file, not to
//! the process: a graceful upgrade passes the descriptor to the new rampart, so the
//! lock is held throughout and stays with the new one when the old one exits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Held for as long as the server runs; the kernel releases it when the last process
/// holding the file ends, however it ends.
pub struct DataDirLock {
    held: Option<Held>,
    handed_over: Arc<AtomicBool>,
}

enum Held {
    Own(Flock<File>),
    /// Passed by the rampart this one took over from: already locked.
    Inherited(File),
}

impl DataDirLock {
    /// The lock file passed by the rampart this one takes over from (which the file
    /// still names until [`DataDirLock::now_held_here`]).
    pub fn inherited(file: File) -> Self {
        Self {
            held: Some(Held::Inherited(file)),
            handed_over: Arc::default(),
        }
    }

    pub fn file(&self) -> Option<&File> {
        match self.held.as_ref()? {
            Held::Own(lock) => Some(lock),
            Held::Inherited(file) => Some(file),
        }
    }

    /// Names this process as the holder (after taking over).
    pub fn now_held_here(&self) {
        if let Some(file) = self.file() {
            write_holder(file);
        }
    }

    /// Set once a successor holds the lock: then dropping this does not unlock it.
    pub fn handed_over(&self) -> Arc<AtomicBool> {
        self.handed_over.clone()
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Unlocking would unlock the successor's descriptor too (same open file);
        // closing ours when the process exits leaves its lock in place.
        if self.handed_over.load(Ordering::SeqCst)
            && let Some(Held::Own(lock)) = self.held.take()
        {
            std::mem::forget(lock);
        }
    }
}

fn write_holder(mut file: &File) {
    // The holder's pid, for the message a second server prints.
    file.set_len(0).ok();
    file.seek(SeekFrom::Start(0)).ok();
    let _ = write!(file, "{}", std::process::id());
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
        Ok(lock) => {
            write_holder(&lock);
            Ok(DataDirLock {
                held: Some(Held::Own(lock)),
                handed_over: Arc::default(),
            })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(anyhow!(
                "another rampart (pid {}) is already serving from {}; stop it first, give this one its own data_dir, or take over from it with `rampart serve --upgrade`",
                holder.trim(),
                data_dir.display()
            ))
        }
        Err((_, errno)) => Err(anyhow!("cannot lock {}: {errno}", path.display())),
    }
}
