//! Reads that go through a whole table (`audit verify` hashes every entry): on a
//! thread of their own at a lower CPU priority.
//!
//! Such a read is CPU work for as long as the table is large, and a loop of them
//! (a monitor verifying the chain again and again) kept one of two cores busy in
//! bench/store.sh, where `/health/ready`'s tail was the probe waiting for a core.
//! At nice +10 the scan gets about a tenth of a contended core: it still finishes,
//! and the API, the engine and the router's threads run first.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::{Store, Tx};

/// How much nicer than the rest of rampart a scan's thread is.
const SCAN_NICENESS: i32 = 10;

impl Store {
    /// [`Store::read`] for a read that scans a whole table: same read slots and
    /// read-only connections, on a thread of lower CPU priority.
    pub async fn scan<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::clone(&self.inner.read_slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Aborted("the store is closing".into()))?;
        let store = self.clone();
        let (done, outcome) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("rampart-scan".into())
            .spawn(move || {
                lower_this_threads_priority();
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| store.read_blocking(f)));
                drop(slot);
                let _ = done.send(result);
            })
            .map_err(|e| StoreError::Aborted(format!("cannot start a scan thread: {e}")))?;
        match outcome.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(StoreError::Aborted("the scan thread ended early".into())),
        }
    }
}

/// Linux keeps a nice value per thread; this one's only. Failing is harmless (the
/// scan runs at normal priority), so it is only logged.
fn lower_this_threads_priority() {
    // SAFETY: gettid and setpriority take and return plain integers.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SCAN_NICENESS)
    };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a scan thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scan_reads_like_a_read_at_a_lower_priority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (verified, nice) = store
            .scan(|tx| {
                // SAFETY: getpriority takes and returns plain integers.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
                Ok((tx.verify_audit()?, nice))
            })
            .await
            .expect("scan");
        assert!(verified.ok);
        assert!(nice >= SCAN_NICENESS, "nice {nice}");
    }
}
