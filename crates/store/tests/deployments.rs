//! Deployments, events, measurements, validation runs, incidents and scaling
//! decisions round-trip through a real SQLite file.

mod common;

use std::time::Duration;

use common::*;
use rampart_store::{
    DeploymentRow, IncidentRow, NewDeploymentEvent, NewMeasurement, NewScalingDecision, Store,
    StoreError, ValidationRunRow, new_id,
};
use serde_json::json;

fn deployment(store: &Store, service: &str, version: &str) -> DeploymentRow {
    DeploymentRow {
        id: new_id(),
        service: service.into(),
        version: version.into(),
        previous_version: None,
        state: "validating".into(),
        record: json!({"phase": "validating", "steps": [5, 25, 50]}),
        created_at: store.now(),
        updated_at: store.now(),
        finished_at: None,
    }
}

#[test]
fn deployment_crud_round_trip() {
    let (dir, store, clock) = open_temp_with_clock();
    let mut row = deployment(&store, "checkout", "v2");
    row.previous_version = Some("v1".into());
    store.insert_deployment(&row).unwrap();
    assert_eq!(store.get_deployment(&row.id).unwrap(), Some(row.clone()));
    assert_eq!(store.get_deployment("missing").unwrap(), None);

    clock.advance(Duration::from_secs(10));
    let record = json!({"phase": "progressing", "step": 1, "weight": 25});
    store
        .update_deployment(&row.id, "progressing", &record, false)
        .unwrap();
    let progressed = store.get_deployment(&row.id).unwrap().unwrap();
    assert_eq!(progressed.state, "progressing");
    assert_eq!(progressed.record, record);
    assert_eq!((progressed.updated_at - row.created_at).num_seconds(), 10);
    assert_eq!(progressed.finished_at, None);
    assert_eq!(store.active_deployments().unwrap().len(), 1);

    clock.advance(Duration::from_secs(5));
    store
        .update_deployment(&row.id, "succeeded", &json!({"phase": "succeeded"}), true)
        .unwrap();
    let finished_at = store.get_deployment(&row.id).unwrap().unwrap().finished_at;
    assert_eq!((finished_at.unwrap() - row.created_at).num_seconds(), 15);

    // A later note on a finished deployment keeps the real end time.
    clock.advance(Duration::from_secs(5));
    store
        .update_deployment(&row.id, "succeeded", &json!({"note": "x"}), true)
        .unwrap();
    let done = store.get_deployment(&row.id).unwrap().unwrap();
    assert_eq!(done.finished_at, finished_at);
    assert_eq!((done.updated_at - row.created_at).num_seconds(), 20);
    assert!(store.active_deployments().unwrap().is_empty());

    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.get_deployment(&row.id).unwrap(), Some(done));
}

#[test]
fn finished_deployments_are_counted_per_service_and_state() {
    let (_dir, store) = open_temp();
    let ended = [
        ("checkout", "succeeded"),
        ("checkout", "succeeded"),
        ("checkout", "rolled_back"),
        ("search", "failed"),
    ];
    for (service, state) in ended {
        let row = deployment(&store, service, "v2");
        store.insert_deployment(&row).unwrap();
        let record = json!({ "state": state });
        store
            .update_deployment(&row.id, state, &record, true)
            .unwrap();
    }
    // In flight: not counted.
    store
        .insert_deployment(&deployment(&store, "checkout", "v3"))
        .unwrap();
    let counts = store
        .read_blocking(|tx| tx.finished_deployment_counts())
        .unwrap();
    assert_eq!(
        counts,
        [
            ("checkout".to_string(), "rolled_back".to_string(), 1),
            ("checkout".to_string(), "succeeded".to_string(), 2),
            ("search".to_string(), "failed".to_string(), 1),
        ]
    );
    let rolled_back = store
        .read_blocking(|tx| tx.finished_deployment_records("rolled_back"))
        .unwrap();
    assert_eq!(
        rolled_back,
        [("checkout".to_string(), json!({ "state": "rolled_back" }))]
    );
}

#[test]
fn deployment_errors_name_what_is_wrong() {
    let (_dir, store) = open_temp();
    let row = deployment(&store, "checkout", "v2");
    store.insert_deployment(&row).unwrap();
    assert!(matches!(
        store.insert_deployment(&row).unwrap_err(),
        StoreError::AlreadyExists {
            kind: "deployment",
            ..
        }
    ));
    let err = store
        .update_deployment("nope", "x", &json!({}), false)
        .unwrap_err();
    assert_eq!(err.to_string(), "no deployment 'nope' in the store");
}

#[test]
fn listing_is_newest_first_filtered_and_limited() {
    let (_dir, store, clock) = open_temp_with_clock();
    let mut ids = Vec::new();
    for (service, version) in [("checkout", "v1"), ("search", "v1"), ("checkout", "v2")] {
        let row = deployment(&store, service, version);
        ids.push(row.id.clone());
        store.insert_deployment(&row).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let all = store.list_deployments(None, 10).unwrap();
    assert_eq!(
        all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    let checkout = store.list_deployments(Some("checkout"), 10).unwrap();
    assert_eq!(
        checkout
            .iter()
            .map(|d| d.version.as_str())
            .collect::<Vec<_>>(),
        vec!["v2", "v1"]
    );
    assert_eq!(store.list_deployments(None, 1).unwrap()[0].id, ids[2]);

    store
        .update_deployment(&ids[0], "rolled_back", &json!({}), true)
        .unwrap();
    let active = store.active_deployments().unwrap();
    assert_eq!(
        active.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[2].clone()],
        "oldest first"
    );
}

#[test]
fn events_and_measurements_belong_to_a_deployment() {
    let (_dir, store, clock) = open_temp_with_clock();
    let row = deployment(&store, "checkout", "v2");
    store.insert_deployment(&row).unwrap();

    for (i, kind) in ["validated", "step", "step"].into_iter().enumerate() {
        clock.advance(Duration::from_secs(1));
        store
            .append_deployment_event(&NewDeploymentEvent {
                deployment_id: row.id.clone(),
                kind: kind.into(),
                message: format!("event {i}"),
                data: json!({"i": i}),
            })
            .unwrap();
    }
    let events = store.deployment_events(&row.id).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        vec!["event 0", "event 1", "event 2"]
    );
    assert!(events.windows(2).all(|w| w[0].at < w[1].at));
    assert_eq!(events[2].data, json!({"i": 2}));

    for step in 0..5u32 {
        store
            .append_measurement(&NewMeasurement {
                deployment_id: row.id.clone(),
                step,
                outcome: if step == 4 { "fail" } else { "pass" }.into(),
                verdict: json!({"error_rate": step}),
            })
            .unwrap();
    }
    let latest = store.measurements(&row.id, 2).unwrap();
    assert_eq!(
        latest.iter().map(|m| m.step).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(latest[1].outcome, "fail");
    assert_eq!(latest[1].verdict, json!({"error_rate": 4}));

    // Paged from the first, oldest first; counted by outcome.
    let steps =
        |page: Vec<rampart_store::Measurement>| page.iter().map(|m| m.step).collect::<Vec<_>>();
    assert_eq!(
        steps(store.measurements_page(&row.id, 0, 2).unwrap()),
        vec![0, 1]
    );
    assert_eq!(
        steps(store.measurements_page(&row.id, 3, 10).unwrap()),
        vec![3, 4]
    );
    assert!(store.measurements_page(&row.id, 5, 10).unwrap().is_empty());
    let counts = store.measurement_counts(&row.id).unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![("fail".to_string(), 1), ("pass".to_string(), 4)]
    );

    let orphan = store.append_deployment_event(&NewDeploymentEvent {
        deployment_id: "ghost".into(),
        kind: "step".into(),
        message: "x".into(),
        data: json!(null),
    });
    assert!(matches!(
        orphan.unwrap_err(),
        StoreError::NotFound {
            kind: "deployment",
            ..
        }
    ));
    let orphan = store.append_measurement(&NewMeasurement {
        deployment_id: "ghost".into(),
        step: 0,
        outcome: "pass".into(),
        verdict: json!({}),
    });
    assert!(matches!(orphan.unwrap_err(), StoreError::NotFound { .. }));
}

#[test]
fn validation_runs_round_trip_and_latest_wins() {
    let (_dir, store, clock) = open_temp_with_clock();
    let dep = deployment(&store, "checkout", "v2");
    store.insert_deployment(&dep).unwrap();
    let mut ids = Vec::new();
    for (i, can_deploy) in [false, true].into_iter().enumerate() {
        let run = ValidationRunRow {
            id: new_id(),
            service: "checkout".into(),
            deployment_id: (i == 1).then(|| dep.id.clone()),
            started_at: store.now(),
            result: json!({"checks": [{"name": "quality_gates", "ok": can_deploy}]}),
            can_deploy,
        };
        store.insert_validation_run(&run).unwrap();
        assert_eq!(
            store.get_validation_run(&run.id).unwrap(),
            Some(run.clone())
        );
        ids.push(run.id);
        clock.advance(Duration::from_secs(1));
    }
    let latest = store.latest_validation_run("checkout").unwrap().unwrap();
    assert_eq!(latest.id, ids[1]);
    assert!(latest.can_deploy);
    assert_eq!(latest.deployment_id.as_deref(), Some(dep.id.as_str()));
    assert_eq!(store.list_validation_runs("checkout", 10).unwrap().len(), 2);
    assert_eq!(store.latest_validation_run("search").unwrap(), None);
}

#[test]
fn incidents_open_update_close_and_list() {
    let (_dir, store, clock) = open_temp_with_clock();
    let incident = IncidentRow {
        id: new_id(),
        service: "checkout".into(),
        opened_at: store.now(),
        updated_at: store.now(),
        closed_at: None,
        status: "open".into(),
        severity: "critical".into(),
        title: "canary error rate 12% > 1%".into(),
        details: json!({"rule": "error_rate"}),
    };
    store.insert_incident(&incident).unwrap();
    assert_eq!(
        store.get_incident(&incident.id).unwrap(),
        Some(incident.clone())
    );
    assert_eq!(store.list_incidents(None, true, 10).unwrap().len(), 1);

    clock.advance(Duration::from_secs(60));
    store
        .update_incident(
            &incident.id,
            "resolved",
            &json!({"rule": "error_rate", "by": "rollback"}),
            true,
        )
        .unwrap();
    let resolved = store.get_incident(&incident.id).unwrap().unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(
        (resolved.closed_at.unwrap() - incident.opened_at).num_seconds(),
        60
    );
    assert!(
        store
            .list_incidents(Some("checkout"), true, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_incidents(Some("checkout"), false, 10)
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list_incidents(Some("search"), false, 10)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .update_incident("ghost", "x", &json!({}), false)
            .unwrap_err(),
        StoreError::NotFound {
            kind: "incident",
            ..
        }
    ));
}

#[test]
fn scaling_decisions_are_recorded_newest_first() {
    let (_dir, store) = open_temp();
    for (from, to) in [(2, 3), (3, 4), (4, 2)] {
        store
            .insert_scaling_decision(&NewScalingDecision {
                service: "checkout".into(),
                from_instances: from,
                to_instances: to,
                reason: "cpu".into(),
                status: "applied".into(),
                data: json!({"cpu": 0.9}),
            })
            .unwrap();
    }
    store
        .insert_scaling_decision(&NewScalingDecision {
            service: "search".into(),
            from_instances: 1,
            to_instances: 2,
            reason: "rps".into(),
            status: "failed".into(),
            data: json!({}),
        })
        .unwrap();
    let checkout = store.list_scaling_decisions(Some("checkout"), 2).unwrap();
    assert_eq!(
        checkout
            .iter()
            .map(|d| (d.from_instances, d.to_instances))
            .collect::<Vec<_>>(),
        vec![(4, 2), (3, 4)]
    );
    assert_eq!(store.list_scaling_decisions(None, 10).unwrap().len(), 4);
}
