//! The data dir and the database files on disk: created private to rampart's user,
//! because they hold per-deploy environment values (often secrets), token hashes and
//! the audit log.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Result, StoreError};

/// Mode of a data dir rampart creates.
pub const DATA_DIR_MODE: u32 = 0o700;
/// Mode of the database file and its `-wal` and `-shm` companions.
pub const DB_FILE_MODE: u32 = 0o600;

/// Creates `path` (and missing parents) with mode 0700. An existing directory keeps
/// its mode (it may be shared on purpose, e.g. `data_dir = "."`), with a warning when
/// others can read it; the database files inside are private either way.
pub fn create_data_dir(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(path)
        .map_err(|source| StoreError::CreateDataDir {
            path: path.to_path_buf(),
            source,
        })?;
    let mode = std::fs::metadata(path).map_or(DATA_DIR_MODE, |m| m.permissions().mode());
    if mode & 0o077 != 0 {
        tracing::warn!(
            data_dir = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data dir can be read by other users; `chmod 700` it"
        );
    }
    Ok(())
}

/// Fails early, with a message about the directory rather than a generic SQLite
/// "unable to open database file", when the data dir cannot be written.
pub(crate) fn check_writable(data_dir: &Path) -> Result<()> {
    let probe = data_dir.join(".rampart-write-probe");
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DB_FILE_MODE)
        .open(&probe);
    match result {
        Ok(file) => {
            drop(file);
            // Leaving the probe behind is harmless; failing to remove it is not an error.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(StoreError::DataDirNotWritable {
            path: data_dir.to_path_buf(),
            source,
        }),
    }
}

/// Makes sure the database file exists with mode 0600 before SQLite opens it: SQLite
/// creates the `-wal` and `-shm` files with the database file's mode, so they follow.
pub(crate) fn make_private(db_path: &Path) -> Result<()> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_FILE_MODE)
        .open(db_path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict(db_path),
        Err(source) => Err(StoreError::Permissions {
            path: db_path.to_path_buf(),
            source,
        }),
    }
}

/// Restricts the `-wal` and `-shm` files left by an older rampart.
pub(crate) fn make_companions_private(db_path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_os_string();
        name.push(suffix);
        let path = Path::new(&name);
        if path.exists() {
            restrict(path)?;
        }
    }
    Ok(())
}

fn restrict(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Permissions {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.permissions().mode() & 0o777 == DB_FILE_MODE {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DB_FILE_MODE)).map_err(
        |source| StoreError::Permissions {
            path: path.to_path_buf(),
            source,
        },
    )
}
