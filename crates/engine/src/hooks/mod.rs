//! `[[service.hook]]` in the engine (docs/ROLLOUTS.md, "Hooks"): pre-rollout and
//! confirm hooks answer the state machine's `RunPreRolloutHooks` and
//! `AskConfirmation` as background actions of the controller, with a timeout per
//! attempt; notification hooks and load tests run in tasks of their own and never
//! hold the controller.

mod call;
mod load_test;
mod payload;

use std::sync::Arc;

use rampart_config::{HookConfig, HookKind};
use rampart_core::rollout::{ConfirmPoint, Input, Phase, Transition};
use rampart_store::NewDeploymentEvent;

use crate::record::DeploymentRecord;
use crate::service::ServiceRuntime;
use crate::shared::{EngineEvent, EngineEventKind, Shared};
use call::{Answer, RetryOn};

/// The service's hooks of `kind`, in config order.
fn of_kind(svc: &ServiceRuntime, kind: HookKind) -> Vec<HookConfig> {
    svc.config()
        .hooks
        .iter()
        .filter(|h| h.kind() == kind)
        .cloned()
        .collect()
}

/// Runs the pre-rollout hooks in order; the first that does not answer 2xx (after its
/// retries) fails them all.
pub(crate) async fn run_pre_rollout(svc: Arc<ServiceRuntime>, record: DeploymentRecord) -> Input {
    let client = match call::client() {
        Ok(client) => client,
        Err(reason) => {
            return Input::PreRolloutFinished {
                ok: false,
                summary: reason,
            };
        }
    };
    let mut passed = Vec::new();
    for hook in of_kind(&svc, HookKind::PreRollout) {
        let Some(webhook) = hook.webhook() else {
            continue;
        };
        let body = payload::payload(hook.name(), "pre_rollout", &record, None);
        let answer = call::post(&client, &webhook, &body, RetryOn::AnyFailure).await;
        if !answer.ok {
            return Input::PreRolloutFinished {
                ok: false,
                summary: answer.text,
            };
        }
        passed.push(answer.text);
    }
    Input::PreRolloutFinished {
        ok: true,
        summary: passed.join("; "),
    }
}

/// Asks every confirm hook at `point`; all must answer 2xx.
pub(crate) async fn ask_confirmation(
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
    point: ConfirmPoint,
) -> Input {
    let kind = match point {
        ConfirmPoint::TrafficIncrease => HookKind::ConfirmTrafficIncrease,
        ConfirmPoint::Promotion => HookKind::ConfirmPromotion,
    };
    let client = match call::client() {
        Ok(client) => client,
        Err(answer) => {
            return Input::Confirmation {
                point,
                accepted: false,
                answer,
            };
        }
    };
    let mut yes = Vec::new();
    for hook in of_kind(&svc, kind) {
        let Some(webhook) = hook.webhook() else {
            continue;
        };
        let body = payload::payload(hook.name(), kind.name(), &record, None);
        let answer = call::post(&client, &webhook, &body, RetryOn::TransportErrors).await;
        if !answer.ok {
            return Input::Confirmation {
                point,
                accepted: false,
                answer: answer.text,
            };
        }
        yes.push(answer.text);
    }
    Input::Confirmation {
        point,
        accepted: true,
        answer: yes.join("; "),
    }
}

/// After a transition is committed: the notification hooks it concerns, and the load
/// tests once the canary first takes traffic.
pub(crate) fn on_transition(
    shared: &Arc<Shared>,
    svc: &Arc<ServiceRuntime>,
    record: &DeploymentRecord,
    transition: &Transition,
) {
    for kind in notification_kinds(transition) {
        for hook in of_kind(svc, kind) {
            let Some(webhook) = hook.webhook() else {
                continue;
            };
            let body = payload::payload(hook.name(), kind.name(), record, Some(transition));
            let (shared, service, id) = (shared.clone(), svc.name().to_string(), record.id.clone());
            tokio::spawn(async move {
                let answer = match call::client() {
                    Ok(client) => call::post(&client, &webhook, &body, RetryOn::AnyFailure).await,
                    Err(text) => Answer { ok: false, text },
                };
                if !answer.ok {
                    tracing::warn!(service = %service, deployment = %id, hook = %webhook.name, answer = %answer.text, "{} hook failed; the rollout goes on", kind.name());
                }
                record_hook_event(&shared, &service, &id, kind, &webhook.name, &answer).await;
            });
        }
    }
    let canary_first_takes_traffic = matches!(transition.from, Phase::Starting { .. })
        && matches!(
            transition.to,
            Phase::Progressing { .. } | Phase::Paused { .. }
        );
    if canary_first_takes_traffic {
        for hook in of_kind(svc, HookKind::LoadTest) {
            if let HookConfig::LoadTest(load) = hook {
                load_test::start(shared.clone(), svc.clone(), record.id.clone(), load.clone());
            }
        }
    }
}

/// Which notification hooks a transition fires: `rollout_step` on entering a step,
/// `rollback` on starting to roll back, `post_rollout` on any end.
fn notification_kinds(t: &Transition) -> Vec<HookKind> {
    let step_of = |phase: &Phase| match phase {
        Phase::Progressing { step, .. } | Phase::Paused { step, .. } => Some(*step),
        _ => None,
    };
    let mut kinds = Vec::new();
    if step_of(&t.to).is_some() && step_of(&t.to) != step_of(&t.from) {
        kinds.push(HookKind::RolloutStep);
    }
    if matches!(t.to, Phase::RollingBack { .. }) && !matches!(t.from, Phase::RollingBack { .. }) {
        kinds.push(HookKind::Rollback);
    }
    if t.to.is_terminal() {
        kinds.push(HookKind::PostRollout);
    }
    kinds
}

/// A hook's outcome in the deployment's events and on the live stream.
async fn record_hook_event(
    shared: &Arc<Shared>,
    service: &str,
    deployment_id: &str,
    kind: HookKind,
    hook: &str,
    answer: &Answer,
) {
    let verb = if answer.ok { "answered" } else { "failed" };
    let event = NewDeploymentEvent {
        deployment_id: deployment_id.to_string(),
        kind: "hook".into(),
        message: format!("{} hook {verb}: {}", kind.name(), answer.text),
        data: serde_json::json!({
            "hook": hook,
            "kind": kind.name(),
            "ok": answer.ok,
            "answer": answer.text,
        }),
    };
    if let Err(e) = shared
        .store
        .write(move |tx| tx.append_deployment_event(&event).map(|_| ()))
        .await
    {
        tracing::error!(error = %e, "cannot record a hook's outcome");
    }
    shared.publish(EngineEvent {
        service: service.to_string(),
        deployment_id: Some(deployment_id.to_string()),
        kind: EngineEventKind::Hook {
            hook: hook.to_string(),
            kind: kind.name().to_string(),
            ok: answer.ok,
            answer: answer.text.clone(),
        },
    });
}

#[cfg(test)]
mod tests {
    use rampart_core::Timestamp;
    use rampart_core::rollout::{Actor, PauseCause, RollbackEnd};

    use super::*;

    fn t(from: Phase, to: Phase) -> Transition {
        Transition {
            at: Timestamp(0),
            from,
            to,
            reason: String::new(),
            actor: Actor::System,
        }
    }

    #[test]
    fn transitions_fire_the_notification_hooks_they_concern() {
        let step = |step| Phase::Progressing { step, weight: 5.0 };
        let starting = Phase::Starting {
            resume: None,
            pre_rollout: false,
        };
        assert_eq!(
            notification_kinds(&t(starting, step(0))),
            [HookKind::RolloutStep]
        );
        assert_eq!(
            notification_kinds(&t(step(0), step(1))),
            [HookKind::RolloutStep]
        );
        let gate = Phase::Paused {
            step: 1,
            weight: 5.0,
            cause: PauseCause::Approval,
        };
        assert!(notification_kinds(&t(step(1), gate)).is_empty());
        let rolling_back = Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack,
        };
        assert_eq!(
            notification_kinds(&t(step(1), rolling_back.clone())),
            [HookKind::Rollback]
        );
        assert_eq!(
            notification_kinds(&t(rolling_back, Phase::RolledBack)),
            [HookKind::PostRollout]
        );
        assert_eq!(
            notification_kinds(&t(Phase::Promoting, Phase::Succeeded)),
            [HookKind::PostRollout]
        );
    }
}
