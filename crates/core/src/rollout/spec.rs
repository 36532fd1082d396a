//! What a rollout is asked to do: the steps, how often to analyse, and when to give up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::steering::Steering;

/// One traffic step: send `weight` percent of traffic to the canary for at least `hold`,
/// plus the requests `steering` routes or mirrors to it, then pass the step's gates
/// (module docs, "Gates") before moving on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Percent of traffic to the canary, `0.0..=100.0`.
    pub weight: f64,
    #[serde(rename = "hold_ms", with = "super::serde_millis")]
    pub hold: Duration,
    /// Header or cookie match and mirroring; absent from rollouts stored before them.
    #[serde(default, skip_serializing_if = "Steering::is_none")]
    pub steering: Steering,
    /// Wait, with no timer, for an operator's promote or resume once the weight is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_promoted: bool,
    /// The step is left only once this approval (a token name or role) was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
}

impl Step {
    /// A step of `weight` percent for `hold`: no gates, no match, no mirroring.
    pub fn timed(weight: f64, hold: Duration) -> Self {
        Self {
            weight,
            hold,
            steering: Steering::default(),
            until_promoted: false,
            approve: None,
        }
    }
}

/// The hook points the state machine waits on; the engine runs the hooks themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookGates {
    /// Hooks run against the ready canary before any traffic moves; a failure ends the
    /// rollout `Failed`.
    pub pre_rollout: bool,
    /// Hooks asked before each weight increase; a "no" holds the step.
    pub confirm_traffic_increase: bool,
    /// Hooks asked before promotion; a "no" holds the last step.
    pub confirm_promotion: bool,
    /// How often a confirm hook that said no is asked again.
    #[serde(rename = "confirm_interval_ms", with = "super::serde_millis")]
    pub confirm_interval: Duration,
}

impl Default for HookGates {
    fn default() -> Self {
        Self {
            pre_rollout: false,
            confirm_traffic_increase: false,
            confirm_promotion: false,
            confirm_interval: Duration::from_secs(10),
        }
    }
}

/// What to do with a step whose analysis has not passed within the progress deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineAction {
    /// Roll back: a canary that cannot be shown healthy is not promoted.
    #[default]
    Fail,
    /// Hold the current weight and wait for an operator.
    Pause,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub steps: Vec<Step>,
    #[serde(rename = "analysis_interval_ms", with = "super::serde_millis")]
    pub analysis_interval: Duration,
    /// A step with no passing analysis for this long ends as `on_deadline` says.
    #[serde(rename = "progress_deadline_ms", with = "super::serde_millis")]
    pub progress_deadline: Duration,
    pub on_deadline: DeadlineAction,
    /// Failed analyses in a row that roll the canary back.
    pub failure_limit: u32,
    /// How long the previous version keeps running after promotion.
    #[serde(rename = "scale_down_delay_ms", with = "super::serde_millis")]
    pub scale_down_delay: Duration,
    /// How long each phase that waits on the engine may last before the rollout gives
    /// up on it. Absent from rollouts stored before deadlines existed: the defaults.
    #[serde(default)]
    pub deadlines: PhaseDeadlines,
    /// Absent from rollouts stored before hooks existed: none.
    #[serde(default)]
    pub hooks: HookGates,
    /// Canary (the steps) or blue-green; absent from rollouts stored before
    /// strategies existed: canary.
    #[serde(default, skip_serializing_if = "Strategy::is_canary")]
    pub strategy: Strategy,
}

/// How the new version takes over.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    /// Traffic moves step by step (`steps`), judged at each.
    #[default]
    Canary,
    /// The new version runs beside the old one behind a preview listener, is judged
    /// there, and takes all traffic in one switch; see [`BlueGreenSpec`].
    BlueGreen(BlueGreenSpec),
}

impl Strategy {
    pub fn is_canary(&self) -> bool {
        matches!(self, Strategy::Canary)
    }

    pub fn blue_green(&self) -> Option<&BlueGreenSpec> {
        match self {
            Strategy::BlueGreen(spec) => Some(spec),
            Strategy::Canary => None,
        }
    }
}

/// Blue-green (Argo Rollouts' `blueGreen`): preview, pre-promotion analysis, one
/// switch, post-promotion analysis that can switch back, the old version kept warm
/// for `scale_down_delay`. `steps` are not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreenSpec {
    /// How long the preview's traffic is judged before the switch; zero runs no
    /// analysis (validation checks only).
    #[serde(rename = "pre_promotion_analysis_ms", with = "super::serde_millis")]
    pub pre_promotion_analysis: Duration,
    /// Switch without an operator once the preview is ready and its analysis passed;
    /// false waits for `promote`.
    pub auto_promotion_enabled: bool,
    /// With auto promotion: wait this long after that first (zero: switch at once).
    #[serde(rename = "auto_promotion_ms", with = "super::serde_millis")]
    pub auto_promotion_after: Duration,
    /// How long live traffic is judged after the switch, against the version before
    /// it; a failure switches back. Zero: the switch ends the rollout.
    #[serde(rename = "post_promotion_analysis_ms", with = "super::serde_millis")]
    pub post_promotion_analysis: Duration,
}

/// The longest each phase that waits on an action of the engine may last; past it, a
/// tick ends the phase as [`super`]'s module docs say ("Deadlines"). Progressing and
/// Paused have the progress deadline instead; terminal phases have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseDeadlines {
    /// Validating: every check, with its retries, must be done by then.
    #[serde(rename = "validation_ms", with = "super::serde_millis")]
    pub validation: Duration,
    /// Starting: the new version's instances must be ready by then.
    #[serde(rename = "start_ms", with = "super::serde_millis")]
    pub start: Duration,
    /// Promoting and Reverting: the version must be at full size and stable by then.
    #[serde(rename = "promotion_ms", with = "super::serde_millis")]
    pub promotion: Duration,
    /// RollingBack: the canary must be stopped by then (it takes no traffic already).
    #[serde(rename = "rollback_ms", with = "super::serde_millis")]
    pub rollback: Duration,
}

impl Default for PhaseDeadlines {
    /// Validation 30 min, start 5 min, promotion 5 min, rollback 2 min.
    fn default() -> Self {
        Self {
            validation: Duration::from_secs(30 * 60),
            start: Duration::from_secs(5 * 60),
            promotion: Duration::from_secs(5 * 60),
            rollback: Duration::from_secs(2 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpecError {
    #[error("a rollout needs at least one step")]
    NoSteps,
    #[error("step {index}: weight {weight} is not a percentage; use a value from 0 to 100")]
    WeightOutOfRange { index: usize, weight: f64 },
    #[error("step {index}: mirror {percent} is not a percentage; use a value above 0, up to 100")]
    MirrorOutOfRange { index: usize, percent: f64 },
    #[error("analysis_interval must be longer than zero")]
    ZeroAnalysisInterval,
    #[error("progress_deadline must be longer than zero")]
    ZeroProgressDeadline,
    #[error("failure_limit must be at least 1")]
    ZeroFailureLimit,
    #[error("the {phase} deadline must be longer than zero")]
    ZeroPhaseDeadline { phase: &'static str },
    #[error("the confirm hooks' interval must be longer than zero")]
    ZeroConfirmInterval,
    #[error("step {index}: an approval needs a name (a token name or role)")]
    BlankApproval { index: usize },
}

impl RolloutSpec {
    /// Rejects specs the machine cannot run; the config crate reports the same rules
    /// with file and line, this is the last line of defence for specs built in code.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.steps.is_empty() {
            return Err(SpecError::NoSteps);
        }
        if let Some((index, step)) = self
            .steps
            .iter()
            .enumerate()
            .find(|(_, step)| !(0.0..=100.0).contains(&step.weight))
        {
            return Err(SpecError::WeightOutOfRange {
                index,
                weight: step.weight,
            });
        }
        if let Some((index, step)) = self.steps.iter().enumerate().find(|(_, step)| {
            let mirror = step.steering.mirror_percent;
            !(mirror == 0.0 || (mirror > 0.0 && mirror <= 100.0))
        }) {
            return Err(SpecError::MirrorOutOfRange {
                index,
                percent: step.steering.mirror_percent,
            });
        }
        if self.analysis_interval.is_zero() {
            return Err(SpecError::ZeroAnalysisInterval);
        }
        if self.progress_deadline.is_zero() {
            return Err(SpecError::ZeroProgressDeadline);
        }
        if self.failure_limit == 0 {
            return Err(SpecError::ZeroFailureLimit);
        }
        let d = &self.deadlines;
        for (phase, deadline) in [
            ("validation", d.validation),
            ("start", d.start),
            ("promotion", d.promotion),
            ("rollback", d.rollback),
        ] {
            if deadline.is_zero() {
                return Err(SpecError::ZeroPhaseDeadline { phase });
            }
        }
        if self.hooks.confirm_interval.is_zero() {
            return Err(SpecError::ZeroConfirmInterval);
        }
        if let Some(index) = self
            .steps
            .iter()
            .position(|step| step.approve.as_ref().is_some_and(|a| a.trim().is_empty()))
        {
            return Err(SpecError::BlankApproval { index });
        }
        Ok(())
    }
}
