//! The judge's evidence of a rollout in flight, kept in the store so that a restart
//! or a graceful upgrade of rampart continues the same sequential test instead of
//! starting it over (its guarantee holds over the whole rollout only if evidence is
//! never thrown away, and starting over would make a slow regression pass).
//!
//! Stored at every evaluation and when the controller detaches (shutdown, upgrade):
//! a planned handover loses nothing; a crash loses the seconds since the last
//! evaluation.

use rampart_core::Timestamp;
use rampart_core::judge::JudgeEvidence;
use serde::{Deserialize, Serialize};

use super::Controller;

#[derive(Serialize, Deserialize)]
struct Stored {
    evidence: JudgeEvidence,
    /// The end of the canary's warm-up, when it has begun.
    judged_from: Option<Timestamp>,
}

impl Controller {
    /// Continues the judge from the evidence stored for this rollout, if any.
    pub(super) async fn restore_evidence(&mut self) {
        let id = self.record.id.clone();
        let stored = match self.shared.store.read(move |tx| tx.judge_state(&id)).await {
            Ok(Some(text)) => text,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(deployment = %self.record.id, error = %e, "cannot read the judge's stored evidence; the analysis starts afresh");
                return;
            }
        };
        let stored: Stored = match serde_json::from_str(&stored) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(deployment = %self.record.id, error = %e, "the judge's stored evidence is unreadable; the analysis starts afresh");
                return;
            }
        };
        if self.judge.restore(stored.evidence) {
            self.judged_from = stored.judged_from;
            tracing::info!(deployment = %self.record.id, "the judge continues from its stored evidence");
        } else {
            tracing::warn!(deployment = %self.record.id, "the judge's stored evidence was gathered under other analysis settings; the analysis starts afresh");
        }
    }

    /// Stores the judge's evidence so far (sequential judges only).
    pub(super) async fn save_evidence(&mut self) {
        let Some(evidence) = self.judge.evidence() else {
            return;
        };
        let stored = Stored {
            evidence,
            judged_from: self.judged_from,
        };
        let text = match serde_json::to_string(&stored) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(deployment = %self.record.id, error = %e, "cannot serialise the judge's evidence");
                return;
            }
        };
        let id = self.record.id.clone();
        if let Err(e) = self
            .shared
            .store
            .write(move |tx| tx.save_judge_state(&id, &text))
            .await
        {
            tracing::warn!(deployment = %self.record.id, error = %e, "cannot store the judge's evidence; a restart would start the analysis afresh");
        }
    }

    /// The rollout ended: its evidence is of no further use.
    pub(super) async fn forget_evidence(&mut self) {
        let id = self.record.id.clone();
        if let Err(e) = self
            .shared
            .store
            .write(move |tx| tx.forget_judge_state(&id))
            .await
        {
            tracing::warn!(deployment = %self.record.id, error = %e, "cannot drop the judge's stored evidence");
        }
    }
}
