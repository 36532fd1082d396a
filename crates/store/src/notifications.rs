//! The notification outbox. A producer (the incident responder, the rollout
//! controller) calls [`Tx::enqueue_notification`] in the same transaction as the
//! change it reports, so a committed change always has its notification and a
//! rolled-back one never does. The engine's delivery worker claims due rows, sends
//! them and records each attempt; a row ends `delivered`, `failed` (the receiver
//! refused it for good) or `abandoned` (retries ran out, or its notifier is gone).
//!
//! Rows of one notifier about one key (`incident-42`) are handed out in order, one
//! at a time: a PagerDuty `resolve` is never sent before the `trigger` it resolves,
//! even when the trigger is being retried.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rampart_core::notify::Message;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::sql::{SqlTime, limit_param, opt_time};
use crate::{Store, Tx};

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// Waiting for its first or next attempt.
    Pending,
    /// A receiver accepted it.
    Delivered,
    /// Its notifier has no use for this kind of message (PagerDuty and a rollout
    /// step); nothing was sent.
    Skipped,
    /// The receiver refused it for good (a 4xx other than 408 and 429); not retried.
    Failed,
    /// Given up: retries ran out, or its notifier is no longer configured.
    Abandoned,
}

impl NotificationState {
    pub const ALL: [NotificationState; 5] = [
        NotificationState::Pending,
        NotificationState::Delivered,
        NotificationState::Skipped,
        NotificationState::Failed,
        NotificationState::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Skipped => "skipped",
            NotificationState::Failed => "failed",
            NotificationState::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationState> {
        NotificationState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One outbox row with its delivery status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: i64,
    /// The `[[notifier]]` name it goes to.
    pub notifier: String,
    pub message: Message,
    pub state: NotificationState,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status on the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt did not deliver (timeout, connection refused, the
    /// receiver's status line and body).
    pub last_error: Option<String>,
    /// When it was delivered, failed or abandoned.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The result of one delivery attempt, as the worker records it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// Nothing to send for this notifier (see [`NotificationState::Skipped`]).
    Skipped {
        reason: String,
    },
    /// Try again at `next_attempt_at` (429, 5xx, timeout, connection error).
    Retry {
        status: Option<u16>,
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Refused for good; not retried.
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// Given up without a final answer from the receiver.
    Abandoned {
        status: Option<u16>,
        error: String,
    },
}

/// Filter for [`Tx::list_notifications`]. Newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationQuery {
    pub state: Option<NotificationState>,
    pub notifier: Option<String>,
    /// Only the messages about one thing (`incident-42`, `rollout-<id>`).
    pub key: Option<String>,
    /// Page backwards: only ids below this one.
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// The most rows [`Tx::list_notifications`] returns at once.
pub const NOTIFICATION_LIST_LIMIT_MAX: u32 = 1000;

const COLUMNS: &str = "id, notifier, message, state, attempts, created_at, next_attempt_at, \
                       last_attempt_at, last_status, last_error, finished_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Notification> {
    let message_text: String = row.get(2)?;
    let message: Message = serde_json::from_str(&message_text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let state_text: String = row.get(3)?;
    let state = NotificationState::parse(&state_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown notification state '{state_text}'").into(),
        )
    })?;
    Ok(Notification {
        id: row.get(0)?,
        notifier: row.get(1)?,
        message,
        state,
        attempts: row.get(4)?,
        created_at: row.get::<_, SqlTime>(5)?.0,
        next_attempt_at: row.get::<_, SqlTime>(6)?.0,
        last_attempt_at: opt_time(row, 7)?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
        finished_at: opt_time(row, 10)?,
    })
}

impl Tx<'_> {
    /// Puts `message` in the outbox for the notifier named `notifier`, due now.
    /// Delivered once this transaction commits (the delivery worker is woken by the
    /// commit). Returns the notification's id.
    pub fn enqueue_notification(&self, notifier: &str, message: &Message) -> Result<i64> {
        let now = SqlTime(self.now());
        let body = serde_json::to_string(message)?;
        self.conn()
            .prepare_cached(
                "INSERT INTO notifications (notifier, topic, key, service, severity, message, \
                 state, created_at, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
            )?
            .execute(params![
                notifier,
                message.topic.as_str(),
                message.key,
                message.service,
                message.severity.as_str(),
                body,
                now,
            ])?;
        self.notifications_enqueued
            .set(self.notifications_enqueued.get() + 1);
        Ok(self.conn().last_insert_rowid())
    }

    /// Claims up to `limit` pending rows that are due, oldest first, and returns
    /// them. A claimed row is not handed out again until its attempt is recorded or
    /// the claims are released ([`Tx::release_notification_claims`], at start). Only
    /// the oldest pending row of each notifier and key is due, so messages about one
    /// incident reach each receiver in the order they were written.
    pub fn claim_due_notifications(&self, limit: u32) -> Result<Vec<Notification>> {
        self.claim_due_notifications_except(limit, &[])
    }

    /// [`Tx::claim_due_notifications`] leaving out the rows of the notifiers in
    /// `busy` (those whose senders hold enough already), so a slow receiver's backlog
    /// stays in the store instead of in memory.
    pub fn claim_due_notifications_except(
        &self,
        limit: u32,
        busy: &[String],
    ) -> Result<Vec<Notification>> {
        let now = SqlTime(self.now());
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications AS n \
             WHERE n.state = 'pending' AND n.claimed_at IS NULL AND n.next_attempt_at <= ?1 \
             AND n.notifier NOT IN (SELECT value FROM json_each(?3)) \
             AND NOT EXISTS (SELECT 1 FROM notifications AS e \
                 WHERE e.state = 'pending' AND e.notifier = n.notifier AND e.key = n.key \
                 AND e.id < n.id) \
             ORDER BY n.next_attempt_at, n.id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![now, limit_param(limit), names_json(busy)], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut claim = self
            .conn()
            .prepare_cached("UPDATE notifications SET claimed_at = ?2 WHERE id = ?1")?;
        for row in &rows {
            claim.execute(params![row.id, now])?;
        }
        Ok(rows)
    }

    /// Makes every claimed row claimable again. Called when the delivery worker
    /// starts: whatever a previous process claimed and did not record is sent again
    /// (at least once).
    pub fn release_notification_claims(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE notifications SET claimed_at = NULL WHERE claimed_at IS NOT NULL",
            [],
        )?)
    }

    /// When the earliest claimable row is due, if there is one (a row waiting
    /// behind an earlier one about the same key does not count: it becomes
    /// claimable when that one is recorded).
    pub fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.next_notification_due_except(&[])
    }

    /// [`Tx::next_notification_due`] among the notifiers not in `busy`.
    pub fn next_notification_due_except(&self, busy: &[String]) -> Result<Option<DateTime<Utc>>> {
        let next = self
            .conn()
            .prepare_cached(
                "SELECT MIN(n.next_attempt_at) FROM notifications AS n \
                 WHERE n.state = 'pending' AND n.claimed_at IS NULL \
                 AND n.notifier NOT IN (SELECT value FROM json_each(?1)) \
                 AND NOT EXISTS (SELECT 1 FROM notifications AS e \
                     WHERE e.state = 'pending' AND e.notifier = n.notifier AND e.key = n.key \
                     AND e.id < n.id)",
            )?
            .query_row([names_json(busy)], |row| row.get::<_, Option<SqlTime>>(0))?;
        Ok(next.map(|t| t.0))
    }

    /// Records one attempt on a pending row and releases its claim. Returns the row
    /// as it now stands.
    pub fn record_notification_attempt(
        &self,
        id: i64,
        outcome: &AttemptOutcome,
    ) -> Result<Notification> {
        let now = SqlTime(self.now());
        let (state, status, error, next): (_, Option<u16>, Option<&str>, Option<SqlTime>) =
            match outcome {
                AttemptOutcome::Delivered { status } => {
                    (NotificationState::Delivered, Some(*status), None, None)
                }
                AttemptOutcome::Skipped { reason } => (
                    NotificationState::Skipped,
                    None,
                    Some(reason.as_str()),
                    None,
                ),
                AttemptOutcome::Retry {
                    status,
                    error,
                    next_attempt_at,
                } => (
                    NotificationState::Pending,
                    *status,
                    Some(error.as_str()),
                    Some(SqlTime(*next_attempt_at)),
                ),
                AttemptOutcome::Failed { status, error } => (
                    NotificationState::Failed,
                    *status,
                    Some(error.as_str()),
                    None,
                ),
                AttemptOutcome::Abandoned { status, error } => (
                    NotificationState::Abandoned,
                    *status,
                    Some(error.as_str()),
                    None,
                ),
            };
        let finished = state != NotificationState::Pending;
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE notifications SET state = ?2, attempts = attempts + 1, \
                 claimed_at = NULL, last_attempt_at = ?3, last_status = ?4, last_error = ?5, \
                 next_attempt_at = COALESCE(?6, next_attempt_at), \
                 finished_at = CASE WHEN ?7 THEN ?3 ELSE NULL END \
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![
                id,
                state.as_str(),
                now,
                status,
                error,
                next,
                finished
            ])?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "pending notification",
                key: id.to_string(),
            });
        }
        self.get_notification(id)?.ok_or(StoreError::NotFound {
            kind: "notification",
            key: id.to_string(),
        })
    }

    /// Deletes notifications that finished (delivered, skipped, failed, abandoned)
    /// before `before`; pending ones are never deleted. Returns how many went.
    pub fn prune_notifications(&self, before: DateTime<Utc>) -> Result<usize> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM notifications WHERE state != 'pending' AND finished_at < ?1",
            )?
            .execute(params![SqlTime(before)])?)
    }

    pub fn get_notification(&self, id: i64) -> Result<Option<Notification>> {
        let row = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE id = ?1"
            ))?
            .query_row([id], from_row)
            .optional()?;
        Ok(row)
    }

    /// Notifications newest first, filtered by `query`.
    pub fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<Notification>> {
        let limit = query.limit.min(NOTIFICATION_LIST_LIMIT_MAX);
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR notifier = ?2) \
             AND (?3 IS NULL OR key = ?3) AND (?4 IS NULL OR id < ?4) \
             ORDER BY id DESC LIMIT ?5"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    query.state.map(NotificationState::as_str),
                    query.notifier,
                    query.key,
                    query.before_id,
                    limit_param(limit)
                ],
                from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many notifications are in each state (states with none are absent).
    pub fn notification_counts(&self) -> Result<BTreeMap<NotificationState, u64>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT state, COUNT(*) FROM notifications GROUP BY state")?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(state, n)| {
                NotificationState::parse(&state).map(|s| (s, u64::try_from(n).unwrap_or(0)))
            })
            .collect())
    }
}

impl Store {
    /// See [`Tx::enqueue_notification`].
    pub fn enqueue_notification(&self, notifier: &str, message: &Message) -> Result<i64> {
        self.with_tx(|tx| tx.enqueue_notification(notifier, message))
    }

    /// See [`Tx::list_notifications`].
    pub fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<Notification>> {
        self.read_blocking(|tx| tx.list_notifications(query))
    }

    /// See [`Tx::get_notification`].
    pub fn get_notification(&self, id: i64) -> Result<Option<Notification>> {
        self.read_blocking(|tx| tx.get_notification(id))
    }
}

/// Notifier names as a JSON array, for `json_each` (one cached statement for any
/// number of names).
fn names_json(names: &[String]) -> String {
    serde_json::Value::from(names.to_vec()).to_string()
}
