//! Revisions (`rampart history`, `rampart rollback --to`): every deployment of a
//! service, numbered from 1 in the order they were made, with the version the
//! service ran before the first one as revision 0. Rolling back to one is a new
//! rollout of its version, through the steps and the judge like any deploy, with the
//! addresses and per-deploy environment it was deployed with (kept in the record).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rampart_config::BackendConfig;
use serde::Serialize;

use super::{DeployRequest, Engine};
use crate::error::EngineError;
use crate::record::{DeploymentKind, DeploymentRecord};
use crate::views::DeploymentSummary;

/// How many deployments of one service the history reads at most.
const HISTORY_LIMIT: u32 = 10_000;
/// How long a recorded static address may take to accept a connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// One revision of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revision {
    /// 1 for the first deployment; 0 for the version that ran before it.
    pub revision: u32,
    pub version: String,
    /// `None` for revision 0 (it came from the config).
    pub deployment_id: Option<String>,
    /// `initial`, `rollout` or `revert` (an emergency rollback).
    pub kind: String,
    pub started_at: Option<String>,
    /// When its rollout ended (promoted, rolled back, ...).
    pub ended_at: Option<String>,
    /// For a version that served: when a later one replaced it.
    pub replaced_at: Option<String>,
    pub deployed_by: Option<String>,
    pub reason: Option<String>,
    /// The rollout's state: `succeeded`, `rolled_back`, `failed`, `aborted`, or the
    /// state of one in flight; `initial` for revision 0.
    pub outcome: String,
    /// It is the stable version now.
    pub serving: bool,
}

/// What a rollback to a revision re-uses.
struct Target {
    revision: u32,
    version: String,
    addresses: Vec<SocketAddr>,
    env: BTreeMap<String, String>,
}

impl Engine {
    /// The service's revisions, oldest first.
    pub async fn history(&self, service: &str) -> Result<Vec<Revision>, EngineError> {
        Ok(self.revisions(service).await?.0)
    }

    /// Starts a rollout back to `to`: a revision number, or a version that ran
    /// (its latest revision). Refused when it cannot be started again.
    pub async fn rollback_to(
        &self,
        service: &str,
        to: &str,
        actor: &str,
        reason: Option<String>,
    ) -> Result<DeploymentSummary, EngineError> {
        let (revisions, targets) = self.revisions(service).await?;
        let target = resolve(service, to, &revisions, &targets)?;
        let stable = self.service(service)?.stable();
        if stable.version == target.version {
            return Err(EngineError::Conflict(format!(
                "{} (revision {}) is already the stable version of `{service}`",
                target.version, target.revision
            )));
        }
        let svc = self.service(service)?.clone();
        if let BackendConfig::Static(_) = &svc.config().backend {
            if target.addresses.is_empty() {
                return Err(EngineError::Conflict(format!(
                    "revision {} of `{service}` recorded no addresses for {}; deploy it with `canary` addresses instead",
                    target.revision, target.version
                )));
            }
            for addr in &target.addresses {
                let reached =
                    tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
                if !matches!(reached, Ok(Ok(_))) {
                    return Err(EngineError::Conflict(format!(
                        "{} (revision {}) ran at {addr}, which no longer accepts connections: it cannot be routed to again; start it there, or deploy it with new `canary` addresses",
                        target.version, target.revision
                    )));
                }
            }
        }
        let what = format!(
            "rollback to {} (revision {})",
            target.version, target.revision
        );
        let reason = Some(match reason {
            Some(why) if !why.trim().is_empty() => format!("{what}: {why}"),
            _ => what,
        });
        let request = DeployRequest {
            version: target.version,
            canary: if svc.is_static() {
                target.addresses.into_iter().map(Into::into).collect()
            } else {
                Vec::new()
            },
            env: target.env,
            reason,
            override_freeze: false,
        };
        self.deploy(service, request, actor).await
    }

    /// Revisions, and for each version what a rollback to it re-uses.
    async fn revisions(
        &self,
        service: &str,
    ) -> Result<(Vec<Revision>, BTreeMap<u32, Target>), EngineError> {
        let stable = self.service(service)?.stable();
        let name = service.to_string();
        let mut rows = self
            .inner
            .shared
            .store
            .read(move |tx| tx.list_deployments(Some(&name), HISTORY_LIMIT))
            .await?;
        rows.reverse();
        let fmt = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut revisions = Vec::new();
        let mut targets = BTreeMap::new();
        let records: Vec<Option<DeploymentRecord>> = rows
            .iter()
            .map(|row| serde_json::from_value(row.record.clone()).ok())
            .collect();
        // Revision 0: what the first deployment replaced, as it recorded it.
        if let Some(Some(first)) = records.first()
            && let Some(initial) = &first.rollout.previous_version
            && first.kind == DeploymentKind::Rollout
        {
            revisions.push(Revision {
                revision: 0,
                version: initial.clone(),
                deployment_id: None,
                kind: "initial".into(),
                started_at: None,
                ended_at: None,
                replaced_at: None,
                deployed_by: None,
                reason: None,
                outcome: "initial".into(),
                serving: false,
            });
            targets.insert(
                0,
                Target {
                    revision: 0,
                    version: initial.clone(),
                    addresses: first.previous_addresses.clone(),
                    env: first.previous_env.clone(),
                },
            );
        }
        for (index, (row, record)) in rows.iter().zip(&records).enumerate() {
            let revision = index as u32 + 1;
            let kind = match record.as_ref().map(|r| r.kind) {
                Some(DeploymentKind::Revert) => "revert",
                _ => "rollout",
            };
            revisions.push(Revision {
                revision,
                version: row.version.clone(),
                deployment_id: Some(row.id.clone()),
                kind: kind.into(),
                started_at: Some(fmt(row.created_at)),
                ended_at: row.finished_at.map(fmt),
                replaced_at: None,
                deployed_by: record.as_ref().map(|r| r.actor.clone()),
                reason: record.as_ref().map(|r| r.reason.clone()),
                outcome: row.state.clone(),
                serving: false,
            });
            if let Some(record) = record {
                targets.insert(
                    revision,
                    Target {
                        revision,
                        version: row.version.clone(),
                        addresses: record.addresses.clone(),
                        env: record.env.clone(),
                    },
                );
            }
        }
        // Versions that served: the initial one and every promoted (or reverted-to)
        // revision; each served until the next one did.
        let served: Vec<usize> = revisions
            .iter()
            .enumerate()
            .filter(|(_, r)| r.outcome == "succeeded" || r.outcome == "initial")
            .map(|(i, _)| i)
            .collect();
        for pair in served.windows(2) {
            let next = revisions[pair[1]].ended_at.clone();
            revisions[pair[0]].replaced_at = next;
        }
        match served.last() {
            Some(&last) if revisions[last].version == stable.version => {
                revisions[last].serving = true;
            }
            _ if revisions.is_empty() => revisions.push(Revision {
                revision: 0,
                version: stable.version.clone(),
                deployment_id: None,
                kind: "initial".into(),
                started_at: None,
                ended_at: None,
                replaced_at: None,
                deployed_by: None,
                reason: None,
                outcome: "initial".into(),
                serving: true,
            }),
            _ => {}
        }
        Ok((revisions, targets))
    }
}

/// `to` as a revision number, else as a version that ran (its latest revision that
/// served, else its latest revision).
fn resolve(
    service: &str,
    to: &str,
    revisions: &[Revision],
    targets: &BTreeMap<u32, Target>,
) -> Result<Target, EngineError> {
    let known = || {
        let mut versions: Vec<&str> = revisions.iter().map(|r| r.version.as_str()).collect();
        versions.dedup();
        versions.join(", ")
    };
    let pick = |revision: u32| {
        targets.get(&revision).map(|t| Target {
            revision: t.revision,
            version: t.version.clone(),
            addresses: t.addresses.clone(),
            env: t.env.clone(),
        })
    };
    if let Ok(number) = to.trim_start_matches('#').parse::<u32>()
        && !revisions.iter().any(|r| r.version == to)
    {
        return pick(number).ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "`{service}` has no revision {number}; `rampart history {service}` lists them (versions: {})",
                known()
            ))
        });
    }
    let latest = |served_only: bool| {
        revisions
            .iter()
            .rev()
            .filter(|r| r.version == to)
            .find(|r| !served_only || r.outcome == "succeeded" || r.outcome == "initial")
            .map(|r| r.revision)
    };
    let revision = latest(true).or_else(|| latest(false)).ok_or_else(|| {
        EngineError::InvalidRequest(format!(
            "`{service}` never ran {to}; versions it ran: {} (`rampart history {service}`)",
            known()
        ))
    })?;
    pick(revision).ok_or_else(|| {
        EngineError::Conflict(format!(
            "revision {revision} of `{service}` ({to}) has a record this rampart cannot read; deploy {to} again with its environment"
        ))
    })
}
