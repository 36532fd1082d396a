//! The engine's part in a graceful upgrade (a new rampart takes over this one's
//! listening sockets and instances) and in re-adopting the instances a previous
//! rampart left running.
//!
//! Handing over: `hold_for_handover` detaches every rollout controller (the rollout
//! stays as committed; the new rampart resumes it), stops background work that
//! would change instance counts, and holds instance restarts; the new rampart then
//! starts from the store. Once it serves, `shutdown_for_handover` drains the routers
//! and lets go of the instances without stopping them. Should the new rampart fail
//! before it serves, `resume_after_failed_handover` picks everything up again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rampart_backends::{BoxFuture, InstanceLedger, InstanceRecord};
use rampart_core::rollout::RecoveryPolicy;
use rampart_store::{InstanceRow, Store};

use super::Engine;
use crate::error::EngineError;
use crate::record::DeploymentRecord;

/// The process backends' instance records, in the store.
pub(crate) struct StoreLedger(pub Store);

impl InstanceLedger for StoreLedger {
    fn recorded(&self, service: &str) -> BoxFuture<'_, Result<Vec<InstanceRecord>, String>> {
        let service = service.to_string();
        Box::pin(async move {
            let rows = self
                .0
                .read(move |tx| tx.instances_of(&service))
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|row| InstanceRecord {
                    service: row.service,
                    instance: row.instance,
                    version: row.version,
                    index: row.index,
                    pid: row.pid,
                    start_time: row.start_time,
                    port: row.port,
                })
                .collect())
        })
    }

    fn save(&self, record: InstanceRecord) -> BoxFuture<'_, Result<(), String>> {
        let row = InstanceRow {
            service: record.service,
            instance: record.instance,
            version: record.version,
            index: record.index,
            pid: record.pid,
            start_time: record.start_time,
            port: record.port,
        };
        Box::pin(async move {
            self.0
                .write(move |tx| tx.save_instance(&row))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn forget(&self, service: &str, instance: &str, pid: u32) -> BoxFuture<'_, Result<(), String>> {
        let (service, instance) = (service.to_string(), instance.to_string());
        Box::pin(async move {
            self.0
                .write(move |tx| tx.forget_instance(&service, &instance, pid))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

pub(crate) fn store_ledger(store: &Store) -> Arc<dyn InstanceLedger> {
    Arc::new(StoreLedger(store.clone()))
}

impl Engine {
    /// After start-up and recovery: instances a previous rampart recorded of versions
    /// that neither serve as stable nor belong to a rollout in flight are stopped.
    pub(super) async fn stop_unclaimed_instances(&self) -> Result<(), EngineError> {
        let in_flight = self
            .inner
            .shared
            .store
            .read(|tx| tx.active_deployments())
            .await?;
        for svc in &self.runtimes() {
            let mut wanted = vec![svc.stable().version];
            wanted.extend(
                in_flight
                    .iter()
                    .filter(|row| row.service == svc.name())
                    .filter_map(|row| {
                        serde_json::from_value::<DeploymentRecord>(row.record.clone()).ok()
                    })
                    .map(|record| record.rollout.version),
            );
            svc.backend.stop_unwanted(&wanted).await;
        }
        Ok(())
    }

    /// Whether a new rampart is taking over: deploys and scaling wait for it.
    pub fn is_handing_over(&self) -> bool {
        self.inner.handing_over.load(Ordering::SeqCst)
    }

    pub(super) fn refuse_while_handing_over(&self) -> Result<(), EngineError> {
        if self.is_handing_over() {
            Err(EngineError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Freezes what the new rampart takes over: rollout controllers detach (their
    /// state is committed; the new rampart resumes them), pending stops of versions
    /// are cancelled (the new rampart stops what nothing claims), the autoscaler and
    /// deploys pause, and crashed instances wait for their restart.
    pub async fn hold_for_handover(&self) {
        {
            // A reload in flight finishes first; those after it are refused.
            let _no_reload = self.inner.config.lock().await;
            self.inner.handing_over.store(true, Ordering::SeqCst);
        }
        self.detach_controllers().await;
        for svc in &self.runtimes() {
            svc.backend.hold_restarts(true);
        }
    }

    /// The new rampart failed before it served: this one carries on, resuming the
    /// rollouts it detached (whatever `on_restart` says: nothing crashed).
    pub async fn resume_after_failed_handover(&self) -> Result<(), EngineError> {
        for svc in &self.runtimes() {
            svc.backend.hold_restarts(false);
        }
        self.inner.handing_over.store(false, Ordering::SeqCst);
        self.recover_with(RecoveryPolicy::Resume).await
    }

    /// The new rampart serves: stop accepting, let requests in flight finish within
    /// `grace`, and leave every instance running for it.
    pub async fn shutdown_for_handover(&self, grace: Duration) {
        self.stop_everything(grace, true).await;
    }

    /// Duplicates of every router listening socket, for the new rampart.
    pub fn router_sockets(&self) -> std::io::Result<Vec<std::net::TcpListener>> {
        self.inner.router.listening_sockets()
    }
}
