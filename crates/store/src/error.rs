//! The store's error type. Messages name the file or directory involved and,
//! where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data dir {path}: {source}")]
    CreateDataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the data dir {path} is not writable: {source}")]
    DataDirNotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot make {path} private to rampart's user (mode 0600): {source}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "the store at {path} has schema version {found}, but this rampart supports only up to \
         version {supported}; upgrade rampart to open it (a newer rampart wrote this data)"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("migrating the store at {path} to schema version {version} failed: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },

    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("cannot encode JSON for the store: {0}")]
    Json(#[from] serde_json::Error),

    #[error("corrupt data in the store: {0}")]
    Corrupt(String),

    #[error(
        "the audit log has entries beyond its recorded head (head seq {head_seq}, highest seq \
         {max_seq}); run `rampart audit verify` before writing more"
    )]
    AuditHeadMismatch { head_seq: u64, max_seq: u64 },

    #[error(
        "a token named '{name}' already exists (names stay reserved after revocation); \
         choose another name"
    )]
    TokenNameTaken { name: String },

    #[error("invalid token name '{name}': {reason}")]
    InvalidTokenName { name: String, reason: &'static str },

    #[error("no {kind} '{key}' in the store")]
    NotFound { kind: &'static str, key: String },

    #[error("a {kind} with id '{key}' already exists")]
    AlreadyExists { kind: &'static str, key: String },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    /// Returned by a `with_tx` closure to abandon its transaction on purpose.
    #[error("transaction aborted: {0}")]
    Aborted(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQLite extended result code of a constraint failure, if `err` is one.
pub(crate) fn constraint_code(err: &rusqlite::Error) -> Option<i32> {
    match err {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(e.extended_code)
        }
        _ => None,
    }
}

pub(crate) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        constraint_code(err),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

pub(crate) fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    constraint_code(err) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}
