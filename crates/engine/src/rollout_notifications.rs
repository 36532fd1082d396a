//! Rollout events as notifications, as Flagger and Argo Rollouts users expect:
//! started, step advanced, paused, promoted, rolled back (with the judge's reason).
//! The controller enqueues them for the service's `notify_rollouts` notifiers in
//! the same transaction as the state change they report.

use rampart_core::notify::{Message, Severity, Topic};
use rampart_core::rollout::{PauseCause, Phase, RollbackEnd, Rollout, Transition};

/// The message for one transition of `rollout`, if it is one people are told of.
pub(crate) fn rollout_message(
    deployment_id: &str,
    rollout: &Rollout,
    transition: &Transition,
) -> Option<Message> {
    // An approval given ahead or a confirm hook's new answer is recorded in place:
    // the rollout neither moved nor paused again.
    if transition.from == transition.to
        && matches!(
            transition.to,
            Phase::Progressing { .. } | Phase::Paused { .. }
        )
    {
        return None;
    }
    let service = &rollout.service;
    let version = &rollout.version;
    let steps = rollout.spec.steps.len();
    let mut fields = vec![("Version".to_string(), version.clone())];
    if let Some(previous) = &rollout.previous_version {
        fields.push(("Previous version".to_string(), previous.clone()));
    }
    let (topic, severity, summary) = match (&transition.from, &transition.to) {
        (Phase::Pending, to) if !to.is_terminal() => (
            Topic::RolloutStarted,
            Severity::Low,
            format!("{service}: rollout of {version} started"),
        ),
        (
            Phase::Starting { .. } | Phase::Progressing { .. },
            Phase::Progressing { step, weight },
        ) => {
            fields.push(("Step".to_string(), format!("{} of {steps}", step + 1)));
            fields.push(("Canary weight".to_string(), format!("{weight} %")));
            (
                Topic::RolloutStepAdvanced,
                Severity::Low,
                format!(
                    "{service}: {version} at step {} of {steps}, {weight} % of traffic",
                    step + 1
                ),
            )
        }
        (
            _,
            Phase::Paused {
                step,
                weight,
                cause,
            },
        ) => {
            fields.push(("Step".to_string(), format!("{} of {steps}", step + 1)));
            fields.push(("Canary weight".to_string(), format!("{weight} %")));
            let (severity, why) = match cause {
                PauseCause::Operator => (Severity::Low, "paused by an operator"),
                PauseCause::Deadline => (Severity::Medium, "paused at the progress deadline"),
                PauseCause::AnalysisUnavailable => (
                    Severity::Medium,
                    "paused: the analysis provider is unavailable",
                ),
                PauseCause::AnalysisInconclusive => {
                    (Severity::Medium, "paused on inconclusive analysis")
                }
                PauseCause::UntilPromoted => (
                    Severity::Low,
                    "waits for an operator's resume or promote (pause = until_promoted)",
                ),
                PauseCause::Approval => (Severity::Medium, "waits for an approval"),
                PauseCause::ConfirmTrafficIncrease => (
                    Severity::Low,
                    "waits for the confirm_traffic_increase hooks",
                ),
                PauseCause::ConfirmPromotion => {
                    (Severity::Low, "waits for the confirm_promotion hooks")
                }
            };
            if let Some(waiting) = rollout.waiting_for().filter(|_| cause.is_gate()) {
                fields.push(("Waiting for".to_string(), waiting));
            }
            (
                Topic::RolloutPaused,
                severity,
                format!("{service}: rollout of {version} {why}"),
            )
        }
        (_, Phase::Succeeded) => (
            Topic::RolloutPromoted,
            Severity::Low,
            format!("{service}: {version} promoted"),
        ),
        (_, Phase::RollingBack { ends_as }) => {
            let what = match ends_as {
                RollbackEnd::RolledBack => "rolled back",
                RollbackEnd::Aborted => "aborted",
            };
            (
                Topic::RolloutRolledBack,
                Severity::High,
                format!("{service}: {version} {what}: {}", transition.reason),
            )
        }
        (from, Phase::Failed) if !matches!(from, Phase::RollingBack { .. }) => (
            Topic::RolloutRolledBack,
            Severity::High,
            format!(
                "{service}: rollout of {version} failed: {}",
                transition.reason
            ),
        ),
        _ => return None,
    };
    fields.push(("Reason".to_string(), transition.reason.clone()));
    fields.push(("By".to_string(), actor_label(&transition.actor)));
    Some(Message {
        topic,
        key: format!("rollout-{deployment_id}"),
        service: Some(service.clone()),
        severity,
        summary,
        fields,
        link: Some(format!("/api/v1/deployments/{deployment_id}")),
        at: rfc3339(transition.at),
    })
}

fn actor_label(actor: &rampart_core::rollout::Actor) -> String {
    match actor {
        rampart_core::rollout::Actor::System => "rampart".to_string(),
        rampart_core::rollout::Actor::User(name) => name.clone(),
    }
}

fn rfc3339(at: rampart_core::Timestamp) -> String {
    let ms = i64::try_from(at.as_millis()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::Timestamp;
    use rampart_core::rollout::Actor;

    fn rollout() -> Rollout {
        let step =
            |weight| rampart_core::rollout::Step::timed(weight, std::time::Duration::from_secs(30));
        let spec = rampart_core::rollout::RolloutSpec {
            steps: vec![step(10.0), step(50.0)],
            analysis_interval: std::time::Duration::from_secs(10),
            progress_deadline: std::time::Duration::from_secs(600),
            on_deadline: rampart_core::rollout::DeadlineAction::Fail,
            failure_limit: 1,
            scale_down_delay: std::time::Duration::from_secs(30),
            deadlines: rampart_core::rollout::PhaseDeadlines::default(),
            strategy: Default::default(),
            hooks: rampart_core::rollout::HookGates::default(),
        };
        Rollout::new("shop", "v2", Some("v1".into()), spec, Timestamp(0)).expect("valid spec")
    }

    fn transition(from: Phase, to: Phase, reason: &str) -> Transition {
        Transition {
            at: Timestamp(1_764_590_400_000),
            from,
            to,
            reason: reason.into(),
            actor: Actor::System,
        }
    }

    #[test]
    fn the_five_events_people_expect() {
        let r = rollout();
        let topic =
            |from, to| rollout_message("ab12", &r, &transition(from, to, "why")).map(|m| m.topic);
        assert_eq!(
            topic(Phase::Pending, Phase::Validating),
            Some(Topic::RolloutStarted)
        );
        assert_eq!(
            topic(
                Phase::Starting {
                    resume: None,
                    pre_rollout: false,
                },
                Phase::Progressing {
                    step: 0,
                    weight: 10.0
                }
            ),
            Some(Topic::RolloutStepAdvanced)
        );
        assert_eq!(
            topic(
                Phase::Progressing {
                    step: 0,
                    weight: 10.0
                },
                Phase::Paused {
                    step: 0,
                    weight: 10.0,
                    cause: PauseCause::Operator
                }
            ),
            Some(Topic::RolloutPaused)
        );
        assert_eq!(
            topic(Phase::Promoting, Phase::Succeeded),
            Some(Topic::RolloutPromoted)
        );
        assert_eq!(
            topic(
                Phase::Progressing {
                    step: 1,
                    weight: 50.0
                },
                Phase::RollingBack {
                    ends_as: RollbackEnd::RolledBack
                }
            ),
            Some(Topic::RolloutRolledBack)
        );
        // Intermediate states are not news.
        assert_eq!(
            topic(
                Phase::Validating,
                Phase::Starting {
                    resume: None,
                    pre_rollout: false,
                }
            ),
            None
        );
        assert_eq!(
            topic(
                Phase::Progressing {
                    step: 1,
                    weight: 50.0
                },
                Phase::Promoting
            ),
            None
        );
        assert_eq!(
            topic(
                Phase::RollingBack {
                    ends_as: RollbackEnd::RolledBack
                },
                Phase::RolledBack
            ),
            None
        );
    }

    #[test]
    fn a_rollback_carries_the_judges_reason() {
        let message = rollout_message(
            "ab12",
            &rollout(),
            &transition(
                Phase::Progressing {
                    step: 1,
                    weight: 50.0,
                },
                Phase::RollingBack {
                    ends_as: RollbackEnd::RolledBack,
                },
                "canary error rate 9.8 % above 5 %",
            ),
        )
        .unwrap();
        assert_eq!(message.key, "rollout-ab12");
        assert_eq!(message.severity, Severity::High);
        assert_eq!(
            message.summary,
            "shop: v2 rolled back: canary error rate 9.8 % above 5 %"
        );
        assert!(
            message
                .fields
                .contains(&("Reason".into(), "canary error rate 9.8 % above 5 %".into()))
        );
        assert!(
            message
                .fields
                .contains(&("Previous version".into(), "v1".into()))
        );
        assert_eq!(message.link.as_deref(), Some("/api/v1/deployments/ab12"));
        assert_eq!(message.at, "2025-12-01T12:00:00.000Z");
    }
}
