//! Where the process backend records the instances it launched, so that a later
//! rampart (after an upgrade, a restart or a crash) can re-adopt them instead of
//! starting them again. The engine implements it over the store.

use std::sync::Arc;

use crate::BoxFuture;

/// One launched instance process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub service: String,
    /// `<version>-<index>`.
    pub instance: String,
    pub version: String,
    pub index: u32,
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, telling the process from a later one with the
    /// same pid.
    pub start_time: u64,
    pub port: u16,
}

pub trait InstanceLedger: Send + Sync {
    /// The instances recorded for `service`.
    fn recorded(&self, service: &str) -> BoxFuture<'_, Result<Vec<InstanceRecord>, String>>;
    /// Records (or replaces) an instance's process.
    fn save(&self, record: InstanceRecord) -> BoxFuture<'_, Result<(), String>>;
    /// Forgets the record of `instance` if it still names process `pid`.
    fn forget(&self, service: &str, instance: &str, pid: u32) -> BoxFuture<'_, Result<(), String>>;
}

/// How a process backend treats its instances beyond its own life.
#[derive(Clone, Default)]
pub struct ProcessOptions {
    /// Instances keep running when rampart exits and are re-adopted at the next
    /// start (`[server] instances_outlive`). Needs `ledger`.
    pub outlive: bool,
    pub ledger: Option<Arc<dyn InstanceLedger>>,
}

impl std::fmt::Debug for ProcessOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessOptions")
            .field("outlive", &self.outlive)
            .field("ledger", &self.ledger.is_some())
            .finish()
    }
}
