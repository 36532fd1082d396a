//! Every decision kept: stored (acting ones always; unchanged ones when their
//! numbers change, and at least every 5 minutes, so the log stays readable and
//! bounded), audited when it acts, published on the event stream.

use std::time::Duration;

use rampart_core::Timestamp;
use rampart_core::autoscale::{Action, Decision, Limit};
use rampart_store::{NewAuditEvent, NewScalingDecision};
use serde::Serialize;

use super::SetKind;
use super::sizing::OperatorFloor;
use crate::error::EngineError;
use crate::service::ServiceRuntime;
use crate::shared::{EngineEvent, EngineEventKind, Shared};

/// An unchanged decision is stored again after this long even if nothing changed.
const HEARTBEAT: Duration = Duration::from_secs(300);

/// One decision as stored, audited and published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingRecord {
    /// The store's id, once stored.
    pub id: Option<i64>,
    pub service: String,
    pub set: SetKind,
    pub version: String,
    pub at: Option<String>,
    pub from: u32,
    pub to: u32,
    /// `applied`, `unchanged` or `failed`.
    pub status: String,
    pub actor: String,
    pub reason: String,
    pub error: Option<String>,
    /// Inputs, each metric's numbers, stabilisation, limits, forecast and cost.
    pub decision: Decision,
    /// The operator's minimum in force when it was decided. Stored with every
    /// decision, so the newest one restores the floor after a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_floor: Option<OperatorFloor>,
}

impl ScalingRecord {
    pub(crate) fn new(
        service: &str,
        set: SetKind,
        version: &str,
        actor: &str,
        decision: Decision,
        error: Option<EngineError>,
    ) -> Self {
        let status = match (&error, decision.action()) {
            (Some(_), _) => "failed",
            (None, Action::None) => "unchanged",
            (None, _) => "applied",
        };
        Self {
            id: None,
            service: service.to_string(),
            set,
            version: version.to_string(),
            at: None,
            from: decision.current,
            to: decision.desired,
            status: status.into(),
            actor: actor.to_string(),
            reason: decision.reason.clone(),
            error: error.map(|e| e.to_string()),
            decision,
            operator_floor: None,
        }
    }

    pub(crate) fn from_row(row: &rampart_store::ScalingDecision) -> Option<Self> {
        let mut record: StoredData = serde_json::from_value(row.data.clone()).ok()?;
        record.0.id = Some(row.id);
        record.0.at = Some(rampart_store::format_timestamp(&row.at));
        Some(record.0)
    }
}

/// The `data` column: the whole record.
struct StoredData(ScalingRecord);

impl<'de> serde::Deserialize<'de> for StoredData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            service: String,
            set: SetKind,
            version: String,
            from: u32,
            to: u32,
            status: String,
            actor: String,
            reason: String,
            error: Option<String>,
            decision: Decision,
            #[serde(default)]
            operator_floor: Option<OperatorFloor>,
        }
        let raw = Raw::deserialize(d)?;
        Ok(StoredData(ScalingRecord {
            id: None,
            service: raw.service,
            set: raw.set,
            version: raw.version,
            at: None,
            from: raw.from,
            to: raw.to,
            status: raw.status,
            actor: raw.actor,
            reason: raw.reason,
            error: raw.error,
            decision: raw.decision,
            operator_floor: raw.operator_floor,
        }))
    }
}

/// What makes an unchanged decision worth storing again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    set: SetKind,
    recommendation: Option<u32>,
    desired: u32,
    limited_by: Option<Limit>,
    operator_floor: Option<(u32, Timestamp)>,
}

pub(crate) async fn store(
    shared: &Shared,
    svc: &ServiceRuntime,
    mut record: ScalingRecord,
) -> ScalingRecord {
    let now = shared.clock.now();
    let acted = record.status != "unchanged";
    let fingerprint = Fingerprint {
        set: record.set,
        recommendation: record.decision.recommendation,
        desired: record.decision.desired,
        limited_by: record.decision.limited_by,
        operator_floor: record
            .operator_floor
            .as_ref()
            .map(|f| (f.instances, f.until)),
    };
    {
        let mut state = svc.sizing.state();
        let last = state
            .last_stored
            .iter()
            .find(|(f, _)| f.set == record.set)
            .cloned();
        let worth = acted
            || last
                .as_ref()
                .is_none_or(|(f, at)| *f != fingerprint || now.since(*at) >= HEARTBEAT);
        if !worth {
            return record;
        }
        state.last_stored.retain(|(f, _)| f.set != record.set);
        state.last_stored.push((fingerprint, now));
        if acted {
            state.recent_sizes.push_back((now, record.to));
            while state.recent_sizes.len() > 512 {
                state.recent_sizes.pop_front();
            }
        }
    }
    let data = match serde_json::to_value(&record) {
        Ok(data) => data,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a scaling decision");
            return record;
        }
    };
    let row = NewScalingDecision {
        service: record.service.clone(),
        from_instances: record.from,
        to_instances: record.to,
        reason: record.reason.clone(),
        status: record.status.clone(),
        data,
    };
    let audit = acted.then(|| NewAuditEvent {
        actor: record.actor.clone(),
        action: match (record.status.as_str(), record.decision.action()) {
            ("failed", _) => "scale.failed",
            (_, Action::ScaleUp) => "scale.up",
            _ => "scale.down",
        }
        .into(),
        subject: format!("service/{}/version/{}", record.service, record.version),
        details: serde_json::json!({
            "set": record.set,
            "from": record.from,
            "to": record.to,
            "reason": record.reason,
            "error": record.error,
            "limited_by": record.decision.limited_by,
        }),
    });
    let stored = shared
        .store
        .write(move |tx| {
            let row = tx.insert_scaling_decision(&row)?;
            if let Some(audit) = &audit {
                tx.append_audit(audit)?;
            }
            Ok(row)
        })
        .await;
    match stored {
        Ok(row) => {
            record.id = Some(row.id);
            record.at = Some(rampart_store::format_timestamp(&row.at));
        }
        Err(e) => tracing::error!(error = %e, "cannot store a scaling decision"),
    }
    shared.publish(EngineEvent {
        service: record.service.clone(),
        deployment_id: None,
        kind: EngineEventKind::Scaling {
            record: Box::new(record.clone()),
        },
    });
    record
}
