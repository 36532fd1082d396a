//! The autoscaler loop and the one owner of instance counts.
//!
//! Every `sync` period, per autoscaled service: read each set's load (per-instance
//! CPU and memory from telemetry, per-version rate and p95 from the router), let the
//! core autoscaler decide, and carry the decision out through [`Engine::scale_set`],
//! the only code that changes a version's size. During a rollout stable and canary
//! are sized each from its own load (never an average over both), and the canary is
//! never smaller than its traffic weight asks. Scale-up adds instances to the router
//! once they are ready; scale-down takes them out of the router and waits for their
//! requests to finish before stopping them.

mod history;
mod observe;
mod recommend;
mod record;
mod resize;
mod sizing;
mod spec;

use std::sync::Arc;
use std::time::Duration;

use rampart_config::BackendConfig;
use rampart_core::Timestamp;
use rampart_core::autoscale::{Autoscaler, Decision, Extra};
use rampart_core::rollout::Phase;
use serde::{Deserialize, Serialize};

pub use recommend::{Recommendation, RecommendationKind};
pub use record::ScalingRecord;
pub use sizing::{OperatorFloor, Sizing};
pub use spec::autoscale_spec;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::service::ServiceRuntime;
use crate::shared::SYSTEM_ACTOR;
use sizing::SetScaler;

/// How long an operator's size holds as the minimum of an autoscaled service unless
/// the request says otherwise.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30 * 60);
/// The longest an operator's minimum may hold.
pub const MAX_HOLD: Duration = Duration::from_secs(7 * 24 * 3600);
/// Rate and p95 are read over the last 5 s (the telemetry's default interval), so a
/// load step shows at the first sync after it.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// The most instances an operator may ask for on a service without autoscaling.
pub const MAX_MANUAL_INSTANCES: u32 = 256;

/// A change of a service's stable size asked by an operator or an incident action.
/// Exactly one of `instances`, `add` and `factor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// This many instances.
    #[serde(default)]
    pub instances: Option<u32>,
    /// This many more than now.
    #[serde(default)]
    pub add: Option<u32>,
    /// Now × factor, rounded up (above 1).
    #[serde(default)]
    pub factor: Option<f64>,
    /// With autoscaling on, the size holds as the minimum this long (default 30m).
    #[serde(default)]
    pub hold_secs: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Who asks (the token's name, or `rampart` for the incident responder).
    #[serde(default)]
    pub actor: String,
}

/// A service's sizing as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingView {
    pub service: String,
    pub autoscaled: bool,
    pub mode: Option<String>,
    pub stable: SetSize,
    pub canary: Option<SetSize>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// Instances the budget pays for.
    pub budget_max: Option<u32>,
    pub operator_floor: Option<OperatorFloor>,
    pub sync_secs: Option<f64>,
    pub decisions: Vec<ScalingRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetSize {
    pub version: String,
    pub instances: u32,
    pub ready: u32,
}

/// Which version set a decision sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    Stable,
    Canary,
}

impl SetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::Stable => "stable",
            SetKind::Canary => "canary",
        }
    }
}

/// The canary's floor for a traffic weight: as many instances per percent of traffic
/// as the stable set has.
pub fn canary_floor(stable: u32, weight: f64) -> u32 {
    if weight <= 0.0 {
        return 1;
    }
    if weight >= 100.0 {
        return stable.max(1);
    }
    let needed = f64::from(stable.max(1)) * weight / (100.0 - weight);
    (needed - 1e-9).ceil().max(1.0) as u32
}

impl Engine {
    /// Starts one autoscaler task per service with `[service.autoscale]`, reading
    /// instance usage from `telemetry` (services a reload adds later get theirs
    /// then). The tasks end with their service or the engine.
    pub fn start_autoscaling(&self, telemetry: rampart_telemetry::Telemetry) {
        self.set_telemetry(telemetry.clone());
        for svc in self.runtimes() {
            self.start_autoscaler(&svc, telemetry.clone());
        }
    }

    /// (Re)starts `svc`'s autoscaler with its current config; none without
    /// `[service.autoscale]` or for a static backend.
    pub(crate) fn start_autoscaler(
        &self,
        svc: &Arc<ServiceRuntime>,
        telemetry: rampart_telemetry::Telemetry,
    ) {
        let config = svc.config();
        let Some(autoscale) = &config.autoscale else {
            svc.end_task(crate::engine::AUTOSCALER);
            return;
        };
        if svc.is_static() {
            return;
        }
        let spec = autoscale_spec(autoscale);
        let engine = self.clone();
        let task_svc = svc.clone();
        let task = tokio::spawn(async move {
            engine.restore_operator_floor(&task_svc).await;
            let mut ticks = tokio::time::interval(spec.sync);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A new rampart taking over decides from its own start.
                if !engine.is_handing_over() {
                    engine.autoscale_once(&task_svc, &telemetry).await;
                }
            }
        });
        svc.own_task(crate::engine::AUTOSCALER, task);
    }

    /// An operator's minimum that still holds survives a restart: it is read back from
    /// the newest stored decision, which carries the floor in force.
    async fn restore_operator_floor(&self, svc: &Arc<ServiceRuntime>) {
        let name = svc.name().to_string();
        let newest = match self
            .shared()
            .store
            .read(move |tx| tx.list_scaling_decisions(Some(&name), 1))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(service = svc.name(), error = %e, "cannot read the last scaling decision; an operator's minimum set before the restart is not restored");
                return;
            }
        };
        let now = self.shared().clock.now();
        let floor = newest
            .first()
            .and_then(ScalingRecord::from_row)
            .and_then(|r| r.operator_floor)
            .filter(|f| f.until > now);
        if let Some(floor) = floor {
            tracing::info!(service = svc.name(), instances = floor.instances, actor = %floor.actor, "an operator's minimum still holds after the restart");
            svc.sizing.state().floor = Some(floor);
        }
    }

    /// One sync of one service: record its load, then decide for the stable set and,
    /// during a rollout, the canary.
    pub(crate) async fn autoscale_once(
        &self,
        svc: &Arc<ServiceRuntime>,
        telemetry: &rampart_telemetry::Telemetry,
    ) {
        let Some(config) = &svc.config().autoscale else {
            return;
        };
        let spec = autoscale_spec(config);
        let shared = self.shared().clone();
        let now = shared.clock.now();
        let latest = telemetry.latest();
        let fresh =
            latest.filter(|l| now.since(l.at) <= telemetry.settings().interval() * 3 + spec.sync);
        let window = RATE_WINDOW.min(spec.sync.max(Duration::from_secs(1)));
        history::record_minute(&shared, svc, fresh.as_deref(), window, now).await;

        let _changing = svc.sizing.lock().await;
        let (phase, canary_version) = rollout_phase(svc);
        if matches!(
            phase,
            Some(Phase::Starting { .. } | Phase::Promoting | Phase::RollingBack { .. })
        ) {
            // Promotion and rollback resize the versions themselves, reading the
            // stable target; the next sync sees what they left.
            return;
        }
        let weight = svc.router.table().canary_weight;
        let stable_version = svc.stable().version;
        let stable_obs = observe::observation(
            svc,
            fresh.as_deref(),
            SetKind::Stable,
            &stable_version,
            window,
            now,
        );
        let forecast = if spec.mode == rampart_core::autoscale::Mode::Reactive {
            None
        } else {
            Some(history::forecast(&shared, svc, &spec, now, 1.0 - weight / 100.0).await)
        };
        let extra = Extra {
            forecast,
            operator_min: svc.sizing.floor_at(now).map(|f| f.instances),
            weight_min: None,
        };
        let decision = decide(
            svc,
            SetKind::Stable,
            &stable_version,
            &spec,
            now,
            &stable_obs,
            &extra,
        );
        let stable_size = decision.desired;
        self.carry_out(
            svc,
            SetKind::Stable,
            &stable_version,
            decision,
            SYSTEM_ACTOR,
        )
        .await;

        let Some(canary_version) = canary_version else {
            svc.sizing.state().canary = None;
            return;
        };
        let canary_obs = observe::observation(
            svc,
            fresh.as_deref(),
            SetKind::Canary,
            &canary_version,
            window,
            now,
        );
        if canary_obs.current == 0 {
            return;
        }
        let extra = Extra {
            forecast: None,
            operator_min: None,
            weight_min: Some(canary_floor(stable_size, weight)),
        };
        let decision = decide(
            svc,
            SetKind::Canary,
            &canary_version,
            &spec,
            now,
            &canary_obs,
            &extra,
        );
        self.carry_out(
            svc,
            SetKind::Canary,
            &canary_version,
            decision,
            SYSTEM_ACTOR,
        )
        .await;
    }

    /// Applies one decision (if it changes anything) and records it.
    async fn carry_out(
        &self,
        svc: &Arc<ServiceRuntime>,
        set: SetKind,
        version: &str,
        decision: Decision,
        actor: &str,
    ) -> ScalingRecord {
        let shared = self.shared().clone();
        let (from, to) = (decision.current, decision.desired);
        let result = if from == to {
            Ok(())
        } else {
            resize::resize(svc, set, version, from, to).await
        };
        if result.is_ok() && from != to {
            let now = shared.clock.now();
            let mut state = svc.sizing.state();
            let scaler = match set {
                SetKind::Stable => state.stable.as_mut(),
                SetKind::Canary => state.canary.as_mut(),
            };
            if let Some(s) = scaler {
                s.scaler.applied(now, from, to);
            }
        }
        let mut record =
            ScalingRecord::new(svc.name(), set, version, actor, decision, result.err());
        record.operator_floor = svc.sizing.floor_at(shared.clock.now());
        record::store(&shared, svc, record).await
    }

    /// Changes a service's stable size by hand (operator) or on an incident's
    /// action. With autoscaling on, the size becomes the minimum for `hold_secs`
    /// (default 30m) and the autoscaler decides at once; without, it is the size.
    /// Serialised with the autoscaler and every other resize.
    pub async fn scale(
        &self,
        service: &str,
        request: ScaleRequest,
    ) -> Result<ScalingRecord, EngineError> {
        let svc = self.service(service)?.clone();
        let BackendConfig::Process(_) = &svc.config().backend else {
            return Err(EngineError::InvalidRequest(format!(
                "service `{service}` uses the static backend, whose upstreams rampart does not start; only process-backend services can be scaled"
            )));
        };
        let given = [
            request.instances.is_some(),
            request.add.is_some(),
            request.factor.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(EngineError::InvalidRequest(
                "give exactly one of `instances` (a size), `add` (more instances) and `factor` (a multiple of the current size)".into(),
            ));
        }
        let actor = if request.actor.is_empty() {
            SYSTEM_ACTOR.to_string()
        } else {
            request.actor.clone()
        };
        let _changing = svc.sizing.lock().await;
        let stable_version = svc.stable().version;
        let current = svc
            .backend
            .instances(&stable_version)
            .iter()
            .filter(|i| {
                !matches!(
                    i.state,
                    rampart_backends::InstanceState::Stopping
                        | rampart_backends::InstanceState::Stopped
                )
            })
            .count() as u32;
        let target = match (request.instances, request.add, request.factor) {
            (Some(0), _, _) => {
                return Err(EngineError::InvalidRequest(
                    "`instances` must be at least 1; to stop a service remove it from the config"
                        .into(),
                ));
            }
            (Some(n), _, _) => n,
            (_, Some(add), _) => current.saturating_add(add),
            (_, _, Some(factor)) if factor.is_finite() && factor > 0.0 && factor <= 100.0 => {
                ((f64::from(current) * factor) - 1e-9).ceil().max(1.0) as u32
            }
            (_, _, Some(factor)) => {
                return Err(EngineError::InvalidRequest(format!(
                    "`factor` {factor} is out of range: give a number above 0 and at most 100"
                )));
            }
            _ => current,
        };
        let now = self.shared().clock.now();
        let reason = request
            .reason
            .clone()
            .unwrap_or_else(|| format!("{actor} asked for {target} instances"));
        let Some(config) = &svc.config().autoscale else {
            if target > MAX_MANUAL_INSTANCES {
                return Err(EngineError::InvalidRequest(format!(
                    "{target} instances is more than rampart runs for one version ({MAX_MANUAL_INSTANCES}); ask for fewer"
                )));
            }
            let decision = manual_decision(now, current, target, &reason);
            return Ok(self
                .carry_out(&svc, SetKind::Stable, &stable_version, decision, &actor)
                .await);
        };
        let hold = request
            .hold_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_HOLD);
        if hold.is_zero() || hold > MAX_HOLD {
            return Err(EngineError::InvalidRequest(format!(
                "`hold_secs` {} is out of range: the minimum may hold from 1 s to 7 days",
                hold.as_secs()
            )));
        }
        let spec = autoscale_spec(config);
        let floor = target.clamp(spec.min, spec.max);
        svc.sizing.state().floor = Some(OperatorFloor {
            instances: floor,
            until: now.saturating_add(hold),
            actor: actor.clone(),
        });
        let obs = observe::observation(
            &svc,
            None,
            SetKind::Stable,
            &stable_version,
            spec.sync.max(Duration::from_secs(5)),
            now,
        );
        let extra = Extra {
            forecast: None,
            operator_min: Some(floor),
            weight_min: None,
        };
        let mut decision = decide(
            &svc,
            SetKind::Stable,
            &stable_version,
            &spec,
            now,
            &obs,
            &extra,
        );
        decision.reason = format!(
            "{reason}; autoscaling is on, so {floor} is the minimum for {} min (within {}..={}): {}",
            hold.as_secs() / 60,
            spec.min,
            spec.max,
            decision.reason
        );
        Ok(self
            .carry_out(&svc, SetKind::Stable, &stable_version, decision, &actor)
            .await)
    }

    /// A service's sizes, limits and recent decisions.
    pub async fn scaling(&self, service: &str, limit: u32) -> Result<ScalingView, EngineError> {
        let svc = self.service(service)?.clone();
        let stable_version = svc.stable().version;
        let size = |version: &str| {
            let instances = svc.backend.instances(version);
            SetSize {
                version: version.to_string(),
                instances: instances
                    .iter()
                    .filter(|i| {
                        !matches!(
                            i.state,
                            rampart_backends::InstanceState::Stopping
                                | rampart_backends::InstanceState::Stopped
                        )
                    })
                    .count() as u32,
                ready: instances.iter().filter(|i| i.is_ready()).count() as u32,
            }
        };
        let (_, canary_version) = rollout_phase(&svc);
        let spec = svc.config().autoscale.as_ref().map(autoscale_spec);
        let name = service.to_string();
        let decisions = self
            .shared()
            .store
            .read(move |tx| tx.list_scaling_decisions(Some(&name), limit))
            .await?;
        let now = self.shared().clock.now();
        Ok(ScalingView {
            service: service.to_string(),
            autoscaled: spec.is_some(),
            mode: spec.as_ref().map(|s| s.mode.as_str().to_string()),
            stable: size(&stable_version),
            canary: canary_version.as_deref().map(size),
            min: spec.as_ref().map(|s| s.min),
            max: spec.as_ref().map(|s| s.max),
            budget_max: spec
                .as_ref()
                .and_then(|s| s.cost)
                .and_then(|c| c.max_instances()),
            operator_floor: svc.sizing.floor_at(now),
            sync_secs: spec.as_ref().map(|s| s.sync.as_secs_f64()),
            decisions: decisions
                .iter()
                .filter_map(ScalingRecord::from_row)
                .collect(),
        })
    }
}

/// The rollout's phase and, while the canary takes traffic, its version.
fn rollout_phase(svc: &ServiceRuntime) -> (Option<Phase>, Option<String>) {
    let state = svc.lock();
    let Some(record) = state
        .last_record
        .as_ref()
        .filter(|_| state.active.is_some())
    else {
        return (None, None);
    };
    let phase = record.rollout.phase.clone();
    let canary = matches!(phase, Phase::Progressing { .. } | Phase::Paused { .. })
        .then(|| record.rollout.version.clone());
    (Some(phase), canary)
}

/// Runs the set's autoscaler (made anew when the set's version changed).
fn decide(
    svc: &ServiceRuntime,
    set: SetKind,
    version: &str,
    spec: &rampart_core::autoscale::AutoscaleSpec,
    now: Timestamp,
    obs: &rampart_core::autoscale::Observation,
    extra: &Extra,
) -> Decision {
    let mut state = svc.sizing.state();
    let slot = match set {
        SetKind::Stable => &mut state.stable,
        SetKind::Canary => &mut state.canary,
    };
    if slot.as_ref().is_none_or(|s| s.version != version) {
        *slot = Some(SetScaler {
            version: version.to_string(),
            scaler: Autoscaler::new(spec.clone()),
        });
    }
    let scaler = &mut slot.as_mut().expect("set above").scaler;
    scaler.set_spec(spec.clone());
    scaler.decide(now, obs, extra)
}

/// A decision for a service without autoscaling: the operator's size, as asked.
fn manual_decision(now: Timestamp, current: u32, target: u32, reason: &str) -> Decision {
    use rampart_core::autoscale::{AutoscaleSpec, Bounds};
    let mut decision = Autoscaler::new(AutoscaleSpec::hpa_defaults(
        1,
        MAX_MANUAL_INSTANCES,
        Vec::new(),
    ))
    .decide(
        now,
        &rampart_core::autoscale::Observation {
            current,
            ..Default::default()
        },
        &Extra::default(),
    );
    decision.desired = target;
    decision.stabilized = target;
    decision.recommendation = Some(target);
    decision.bounds = Bounds {
        min: 1,
        max: MAX_MANUAL_INSTANCES,
        budget_max: None,
        operator_min: None,
        weight_min: None,
        effective_min: 1,
        effective_max: MAX_MANUAL_INSTANCES,
    };
    decision.reason = if target == current {
        format!("{reason}: already {current}")
    } else {
        format!("{reason}: {current} → {target} (no autoscaling)")
    };
    decision
}

#[cfg(test)]
mod tests {
    use super::canary_floor;

    #[test]
    fn the_canary_floor_gives_it_as_many_instances_per_percent_as_stable() {
        assert_eq!(canary_floor(4, 5.0), 1);
        assert_eq!(canary_floor(4, 25.0), 2);
        assert_eq!(canary_floor(4, 50.0), 4);
        assert_eq!(canary_floor(10, 20.0), 3);
        assert_eq!(canary_floor(3, 100.0), 3);
        assert_eq!(canary_floor(3, 0.0), 1);
    }
}
