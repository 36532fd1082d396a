//! What answers questions without changing anything: status, traffic, deployments,
//! measurements, samples.

use std::time::Duration;

use rampart_core::Timestamp;
use rampart_core::rollout::Phase;
use rampart_router::TrafficStatus;

use super::{Engine, LIVE_WINDOW};
use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::views::{
    ActiveRolloutView, AnalysisSummary, DeploymentDetail, DeploymentSummary, LiveNumbers,
    MeasurementPage, MeasurementView, ServiceStatus, SetNumbers, summary_of,
};

impl Engine {
    /// A service's router numbers over the last `last` (at most the router's 640 s).
    pub fn window(
        &self,
        service: &str,
        last: Duration,
    ) -> Result<rampart_core::WindowSample, EngineError> {
        Ok(self.service(service)?.router.window(last))
    }

    pub fn traffic(&self, service: &str) -> Result<TrafficStatus, EngineError> {
        Ok(self.service(service)?.router.status())
    }

    pub(super) async fn summary(&self, id: &str) -> Result<DeploymentSummary, EngineError> {
        let key = id.to_string();
        let row = self
            .inner
            .shared
            .store
            .read(move |tx| tx.get_deployment(&key))
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        Ok(summary_of(&row))
    }

    pub async fn status(&self, service: &str) -> Result<ServiceStatus, EngineError> {
        let svc = self.service(service)?;
        let (stable, previous, active, boundary) = {
            let state = svc.lock();
            let active = state.active.as_ref().and_then(|a| {
                state
                    .last_record
                    .as_ref()
                    .filter(|r| r.id == a.id)
                    .map(active_view)
            });
            // Live numbers belong to one rollout: from its start while it runs, from
            // its end once it is over, so no set shows another rollout's requests.
            let boundary = state.last_record.as_ref().map(|r| {
                let rollout = &r.rollout;
                match &active {
                    Some(_) => rollout.created_at,
                    None => rollout.history.last().map_or(rollout.created_at, |t| t.at),
                }
            });
            (
                state.stable.clone(),
                state.previous.clone(),
                active,
                boundary,
            )
        };
        let now = self.inner.shared.clock.now();
        let start = live_window_start(now, boundary);
        let window = svc.router.window_between(start, now);
        let name = service.to_string();
        let last_deployment = self
            .inner
            .shared
            .store
            .read(move |tx| tx.list_deployments(Some(&name), 5))
            .await?
            .into_iter()
            .find(|row| row.finished_at.is_some())
            .map(|row| summary_of(&row));
        Ok(ServiceStatus {
            service: service.to_string(),
            listen: svc.router.listen_addr(),
            backend: svc.backend.kind().to_string(),
            stable_version: stable.version,
            rollback_target: previous.map(|p| p.version),
            active,
            last_deployment,
            live: LiveNumbers {
                window_secs: now.since(start).as_secs_f64().ceil() as u64,
                stable: SetNumbers::from(&window.stable),
                canary: SetNumbers::from(&window.canary),
            },
            traffic: svc.router.status(),
        })
    }

    /// The per-second samples the judge saw in deployment `id`, as JSON lines (one
    /// `WindowSample` each, what `judge-bench --replay` reads); empty when it judged
    /// nothing.
    pub async fn deployment_samples(&self, id: &str) -> Result<String, EngineError> {
        let key = id.to_string();
        let known = self
            .inner
            .shared
            .store
            .read(move |tx| tx.get_deployment(&key))
            .await?;
        if known.is_none() {
            return Err(EngineError::UnknownDeployment(id.to_string()));
        }
        let path = crate::samples::samples_path(&self.inner.shared.samples_dir, id);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(EngineError::Io(format!(
                "cannot read the samples of deployment {id} at {}: {e}",
                path.display()
            ))),
        }
    }

    pub async fn deployment(&self, id: &str) -> Result<DeploymentDetail, EngineError> {
        let key = id.to_string();
        // One snapshot: the row, its measurements, events and validation agree.
        let (row, validation_runs, by_outcome, last, events) = self
            .inner
            .shared
            .store
            .read(move |tx| {
                let Some(row) = tx.get_deployment(&key)? else {
                    return Ok(None);
                };
                let runs = tx.list_validation_runs(&row.service, 20)?;
                let by_outcome = tx.measurement_counts(&key)?;
                let last = tx.measurements(&key, 1)?;
                let events = tx.deployment_events(&key)?;
                Ok(Some((row, runs, by_outcome, last, events)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        let record: DeploymentRecord = serde_json::from_value(row.record.clone()).map_err(|e| {
            EngineError::Internal(format!("deployment {id} has an unreadable record: {e}"))
        })?;
        let validation = validation_runs
            .into_iter()
            .find(|v| v.deployment_id.as_deref() == Some(id))
            .map(|v| v.result);
        Ok(DeploymentDetail {
            summary: summary_of(&row),
            analysis: AnalysisSummary {
                measurements: by_outcome.values().sum(),
                by_outcome,
                last: last.into_iter().next().map(MeasurementView::from),
            },
            events,
            record,
            validation,
        })
    }

    /// A page of a deployment's analysis measurements, oldest first.
    pub async fn measurements(
        &self,
        id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<MeasurementPage, EngineError> {
        let key = id.to_string();
        let (total, items) = self
            .inner
            .shared
            .store
            .read(move |tx| {
                if tx.get_deployment(&key)?.is_none() {
                    return Ok(None);
                }
                let total: u64 = tx.measurement_counts(&key)?.values().sum();
                Ok(Some((total, tx.measurements_page(&key, offset, limit)?)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        Ok(MeasurementPage {
            total,
            offset,
            limit,
            items: items.into_iter().map(MeasurementView::from).collect(),
        })
    }

    pub async fn deployments(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeploymentSummary>, EngineError> {
        if let Some(name) = service {
            self.service(name)?;
        }
        let service = service.map(str::to_string);
        Ok(self
            .inner
            .shared
            .store
            .read(move |tx| tx.list_deployments(service.as_deref(), limit))
            .await?
            .iter()
            .map(summary_of)
            .collect())
    }
}

/// The start of the live window: `LIVE_WINDOW` back from `now` (in whole seconds, the
/// router's resolution), but not before the first whole second after `boundary`.
fn live_window_start(now: Timestamp, boundary: Option<Timestamp>) -> Timestamp {
    let seconds = LIVE_WINDOW.as_secs().max(1);
    let mut start = Timestamp::from_millis((now.as_secs() + 1).saturating_sub(seconds) * 1000);
    if let Some(boundary) = boundary {
        let after = Timestamp::from_millis(boundary.as_millis().div_ceil(1000) * 1000);
        start = start.max(after.min(now));
    }
    start
}

fn active_view(record: &DeploymentRecord) -> ActiveRolloutView {
    let rollout = &record.rollout;
    let (step, canary_weight) = match rollout.phase {
        Phase::Progressing { step, weight } | Phase::Paused { step, weight, .. } => {
            (Some(step + 1), weight)
        }
        _ => (None, 0.0),
    };
    ActiveRolloutView {
        id: record.id.clone(),
        version: rollout.version.clone(),
        phase: rollout.phase.clone(),
        state: record.state_name(),
        step,
        steps: rollout.spec.steps.len(),
        canary_weight,
        last_verdict: rollout.last_verdict.clone(),
        last_transition: rollout.history.last().cloned(),
        waiting_for: rollout.waiting_for(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_live_window_never_reaches_back_past_the_rollout_boundary() {
        let now = at(100_500);
        // No rollout known: the last ten whole seconds, the current one included.
        assert_eq!(live_window_start(now, None), at(91_000));
        // Long ago: no effect.
        assert_eq!(live_window_start(now, Some(at(20_000))), at(91_000));
        // Three seconds ago, mid-second: from the next whole second, so that the
        // boundary's own second (with the previous rollout's requests) is left out.
        assert_eq!(live_window_start(now, Some(at(97_300))), at(98_000));
        // Within the current second: nothing yet.
        assert_eq!(live_window_start(now, Some(at(100_200))), now);
    }
}
