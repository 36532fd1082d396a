//! What SQLite holds in memory for this process (page caches, statements, schema),
//! for `/metrics`: the store's share of rampart's RSS, so a climbing RSS can be told
//! apart from a store whose caches are still filling.

/// Bytes SQLite has allocated now, and the most it ever had (all connections).
pub fn sqlite_memory() -> (i64, i64) {
    let (mut current, mut highwater) = (0i64, 0i64);
    // SAFETY: sqlite3_status64 only reads SQLite's global counters into the two
    // out-pointers, which are valid for the call; it is thread-safe.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_status64(
            rusqlite::ffi::SQLITE_STATUS_MEMORY_USED,
            &mut current,
            &mut highwater,
            0,
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        (current, highwater)
    } else {
        (0, 0)
    }
}

/// The most SQLite may hold in this process, over all connections, before it
/// recycles page-cache memory instead of allocating more. The per-connection caches
/// (2 MB for the writer, 512 KiB for each reader) add up to about 7 MB, which they
/// only reach as the database grows: a soak saw SQLite's memory climb 0.6 MB a
/// minute, well past its warm-up, towards that sum. Reads and writes touch a few
/// pages each and the OS page cache holds the file, so a smaller shared bound costs
/// little. A soft limit: SQLite goes over it rather than fail an allocation.
pub const SQLITE_SOFT_HEAP_LIMIT: i64 = 4 * 1024 * 1024;

/// Applies [`SQLITE_SOFT_HEAP_LIMIT`] (process-wide; setting it again is harmless).
pub(crate) fn limit_sqlite_memory() {
    // SAFETY: sets SQLite's global soft heap limit; thread-safe, no pointers.
    unsafe {
        rusqlite::ffi::sqlite3_soft_heap_limit64(SQLITE_SOFT_HEAP_LIMIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_store_bounds_sqlite_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = crate::Store::open(dir.path()).expect("open");
        // SAFETY: a negative argument only reads the limit.
        let limit = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
        assert_eq!(limit, SQLITE_SOFT_HEAP_LIMIT);
        assert!(sqlite_memory().0 > 0, "SQLite's allocations are counted");
    }
}
