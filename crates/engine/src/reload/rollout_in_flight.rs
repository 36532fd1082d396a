//! A reload while a rollout is in flight, on the engine with fake backends: what
//! steers the rollout (strategy, analysis, checks) and the service's removal wait
//! for its end; router settings apply at once and the rollout goes on.

use crate::Operation;
use crate::fault_injection::LONG;
use crate::fault_injection::fakes::{SERVICE, harness};
use crate::reload::ReloadError;

fn refused(result: Result<crate::reload::ReloadSummary, ReloadError>) -> Vec<String> {
    match result {
        Err(ReloadError::Refused(reasons)) => reasons,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_in_flight_keeps_its_strategy_and_its_service_but_takes_router_settings() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    let current = h.engine.config().await;

    let mut without = current.clone();
    without.services.clear();
    let reasons = refused(h.engine.reload(&without, "alice").await);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains(&rollout.id), "{reasons:?}");
    assert_eq!(h.engine.service_names(), [SERVICE], "nothing was removed");

    let mut steps = current.clone();
    steps.services[0].strategy.steps[0].weight = 30.0;
    let reasons = refused(h.engine.reload(&steps, "alice").await);
    assert!(reasons[0].contains("`strategy`"), "{reasons:?}");

    let mut tuned = current.clone();
    tuned.services[0].router.request_timeout = rampart_config::Duration::from_millis(5000);
    let summary = h.engine.reload(&tuned, "alice").await.expect("applied");
    assert_eq!(summary.changed.len(), 1);
    assert_eq!(summary.changed[0].fields[0].field, "router.request_timeout");
    let svc = h.engine.runtime(SERVICE).expect("still configured");
    assert_eq!(
        svc.router.settings().request_timeout,
        rampart_config::Duration::from_millis(5000)
    );
    assert_eq!(h.engine.config().await, tuned, "the new config is in force");

    // The rollout went on under the strategy it started with, and ends normally.
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "succeeded", LONG).await;

    // Once it has ended, the strategy change applies (from the next rollout).
    let mut next = tuned.clone();
    next.services[0].strategy.steps[0].weight = 30.0;
    let summary = h.engine.reload(&next, "alice").await.expect("applied");
    assert!(
        summary.changed[0]
            .notes
            .iter()
            .any(|n| n.contains("next rollout"))
    );
    assert_eq!(svc.config().strategy.steps[0].weight, 30.0);
}
