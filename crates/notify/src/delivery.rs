//! The delivery worker: outbox rows to receivers, at least once.
//!
//! One loop claims due rows and hands each to its notifier's own task, so a slow
//! or rate-limited receiver never delays another. Each notifier task keeps to the
//! notifier's rate, sends, and records the attempt in the store: delivered,
//! skipped, retried later (429, 408, 5xx, timeouts and connection errors, with
//! exponential backoff and jitter, never sooner than `Retry-After`), failed (any
//! other answer; audited) or abandoned (still failing after the notifier's
//! `retry_for`; audited).
//!
//! Nothing is lost across a crash: a row is claimed in the store before it is
//! sent and recorded after, and every claim left by a dead process is released
//! when the worker starts, so it is sent again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rampart_config::{Config, DeliverySettings};
use rampart_store::{AttemptOutcome, NewAuditEvent, Notification, NotificationState, Store};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::backoff::{parse_retry_after, retry_delay};
use crate::channel::{Channel, ChannelContext, Outgoing};
use crate::metrics::DeliveryMetrics;
use crate::rate_limit::RateLimiter;
use crate::registry::ChannelRegistry;

/// Rows claimed per trip to the store.
const CLAIM_BATCH: u32 = 100;
/// Rows a notifier's sender may hold before its next ones are left in the store:
/// a slow or rate-limited receiver's backlog must not move into memory.
const SENDER_QUEUE: usize = 2 * CLAIM_BATCH as usize;
/// The longest the worker sleeps without looking at the outbox, in case a row
/// was written by a process whose commit could not wake it.
const POLL_AT_LEAST_EVERY: Duration = Duration::from_secs(5);
/// Finished notifications are kept this long for `rampart notifications`, then
/// deleted (pending ones never are).
pub const KEEP_FINISHED: Duration = Duration::from_secs(30 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How much of a refusing receiver's answer is kept with the notification.
const ERROR_BODY_MAX: usize = 512;
const AUDIT_ACTOR: &str = "rampart";

/// The configured notifiers, built into channels.
#[derive(Clone, Default)]
pub struct Notifiers {
    slots: BTreeMap<String, Slot>,
}

#[derive(Clone)]
struct Slot {
    channel: Arc<dyn Channel>,
    settings: DeliverySettings,
    rate: f64,
}

impl Notifiers {
    /// Channels for every `[[notifier]]` of `config`.
    pub fn from_config(config: &Config) -> Notifiers {
        let registry = ChannelRegistry::builtin();
        let context = ChannelContext {
            public_url: config.server.public_url.clone(),
        };
        let mut slots = BTreeMap::new();
        for notifier in &config.notifiers {
            match registry.build(notifier, &context) {
                Some(channel) => {
                    slots.insert(
                        notifier.name().to_string(),
                        Slot {
                            channel: Arc::from(channel),
                            settings: notifier.delivery(),
                            rate: notifier.rate_limit(),
                        },
                    );
                }
                None => tracing::error!(
                    notifier = notifier.name(),
                    kind = notifier.kind_name(),
                    "no channel is registered for this notifier kind"
                ),
            }
        }
        Notifiers { slots }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

pub struct DeliveryWorker {
    store: Store,
    notifiers: Notifiers,
    client: reqwest::Client,
    metrics: DeliveryMetrics,
}

impl DeliveryWorker {
    pub fn new(store: Store, notifiers: Notifiers) -> Result<DeliveryWorker, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
            // A redirected POST turns into a GET on 301/302; a notifier URL that
            // redirects is reported, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(DeliveryWorker {
            store,
            notifiers,
            client,
            metrics: DeliveryMetrics::default(),
        })
    }

    /// The worker's metrics, to register with the server's registry.
    pub fn metrics(&self) -> DeliveryMetrics {
        self.metrics.clone()
    }

    /// Runs until `stop` turns true. Rows in flight then stay claimed and are sent
    /// again at the next start.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let outbox = self.store.outbox_signal();
        // Wakes the claim loop when a row was recorded: the next one about the same
        // key may now be claimable.
        let recorded = Arc::new(Notify::new());
        match self
            .store
            .write(|tx| tx.release_notification_claims())
            .await
        {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(
                    released,
                    "sending again notifications claimed before the restart"
                )
            }
            Err(e) => tracing::error!(error = %e, "cannot release notification claims"),
        }
        let mut next_prune = tokio::time::Instant::now();
        let mut tasks = JoinSet::new();
        let mut queues = BTreeMap::new();
        for (name, slot) in &self.notifiers.slots {
            let (queue, rows) = mpsc::channel(SENDER_QUEUE);
            queues.insert(name.clone(), queue);
            let sender = Sender {
                store: self.store.clone(),
                client: self.client.clone(),
                name: name.clone(),
                slot: slot.clone(),
                recorded: Arc::clone(&recorded),
                metrics: self.metrics.clone(),
            };
            tasks.spawn(sender.run(rows));
        }
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                prune(&self.store).await;
            }
            // A sender that could not take a whole batch more is skipped this trip.
            let busy: Vec<String> = queues
                .iter()
                .filter(|(_, queue)| queue.capacity() < CLAIM_BATCH as usize)
                .map(|(name, _)| name.clone())
                .collect();
            let claim_busy = busy.clone();
            let claimed = match self
                .store
                .write(move |tx| tx.claim_due_notifications_except(CLAIM_BATCH, &claim_busy))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification outbox");
                    Vec::new()
                }
            };
            let full_batch = claimed.len() as u32 == CLAIM_BATCH;
            for row in claimed {
                match queues.get(&row.notifier) {
                    Some(queue) => {
                        // Never full: only this loop sends, and it skips a sender
                        // without room for a whole batch.
                        if queue.try_send(row).is_err() {
                            tracing::error!(
                                "a notifier's sender stopped; its rows wait for a restart"
                            );
                        }
                    }
                    None => {
                        let error = format!(
                            "notifier '{}' is not configured (any more); add a [[notifier]] with this name to deliver such messages",
                            row.notifier
                        );
                        self.metrics.attempt(&row.notifier, "abandoned");
                        record(
                            &self.store,
                            &row,
                            AttemptOutcome::Abandoned {
                                status: None,
                                error,
                            },
                        )
                        .await;
                    }
                }
            }
            if full_batch {
                continue;
            }
            let wait = match self
                .store
                .read(move |tx| tx.next_notification_due_except(&busy))
                .await
            {
                Ok(Some(due)) => (due - self.store.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(POLL_AT_LEAST_EVERY),
                Ok(None) => POLL_AT_LEAST_EVERY,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification outbox");
                    POLL_AT_LEAST_EVERY
                }
            };
            tokio::select! {
                _ = outbox.notified() => {}
                _ = recorded.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        drop(queues);
        tasks.abort_all();
    }
}

/// One notifier's sending task.
struct Sender {
    store: Store,
    client: reqwest::Client,
    name: String,
    slot: Slot,
    recorded: Arc<Notify>,
    metrics: DeliveryMetrics,
}

impl Sender {
    async fn run(self, mut rows: mpsc::Receiver<Notification>) {
        let mut limiter = RateLimiter::new(self.slot.rate);
        while let Some(row) = rows.recv().await {
            limiter.acquire().await;
            let (outcome, pause) = self.attempt(&row).await;
            if let Some(pause) = pause {
                limiter.pause_until(tokio::time::Instant::now() + pause);
            }
            self.count(&row, &outcome);
            record(&self.store, &row, outcome).await;
            self.recorded.notify_one();
        }
    }

    fn count(&self, row: &Notification, outcome: &AttemptOutcome) {
        let name = match outcome {
            AttemptOutcome::Delivered { .. } => {
                let waited = (self.store.now() - row.created_at).num_milliseconds();
                self.metrics
                    .delivered_after(&self.name, waited.max(0) as f64 / 1000.0);
                "delivered"
            }
            AttemptOutcome::Skipped { .. } => "skipped",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
            AttemptOutcome::Abandoned { .. } => "abandoned",
        };
        self.metrics.attempt(&self.name, name);
    }

    /// One attempt, and how long the receiver asked the notifier to pause.
    async fn attempt(&self, row: &Notification) -> (AttemptOutcome, Option<Duration>) {
        let attempt = row.attempts + 1;
        let outgoing = Outgoing {
            id: row.id,
            notifier: &self.name,
            attempt,
            message: &row.message,
            sent_at: self.store.now().timestamp(),
        };
        let Some(request) = self.slot.channel.render(&outgoing) else {
            let reason = format!(
                "a {} notifier takes no {} messages",
                self.slot.channel.kind(),
                row.message.topic.as_str()
            );
            return (AttemptOutcome::Skipped { reason }, None);
        };
        let mut builder = self
            .client
            .post(&request.url)
            .timeout(self.slot.settings.timeout.get())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                let error = describe(&e, self.slot.settings.timeout.get());
                return (self.retry(row, attempt, None, error, None), None);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.store.now()));
        if status.is_success() {
            return (
                AttemptOutcome::Delivered {
                    status: status.as_u16(),
                },
                None,
            );
        }
        let body = match response.text().await {
            Ok(body) => crate::text::truncate(body.trim(), ERROR_BODY_MAX),
            Err(_) => String::new(),
        };
        let error = if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        };
        let code = Some(status.as_u16());
        let retryable = status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        if !retryable {
            let error = if status.is_redirection() {
                format!("{error} (redirects are not followed; configure the final URL)")
            } else {
                error
            };
            return (
                AttemptOutcome::Failed {
                    status: code,
                    error,
                },
                None,
            );
        }
        let pause = if status == http::StatusCode::TOO_MANY_REQUESTS {
            Some(retry_after.unwrap_or(Duration::from_secs(1)))
        } else {
            None
        };
        (self.retry(row, attempt, code, error, retry_after), pause)
    }

    fn retry(
        &self,
        row: &Notification,
        attempt: u32,
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    ) -> AttemptOutcome {
        let delay = retry_delay(attempt, retry_after, rand::random::<f64>());
        let next_attempt_at = self.store.now() + to_delta(delay);
        let retry_for = self.slot.settings.retry_for;
        if next_attempt_at > row.created_at + to_delta(retry_for.get()) {
            return AttemptOutcome::Abandoned {
                status,
                error: format!(
                    "{error}; gave up after {attempt} attempts (retry_for = {retry_for})"
                ),
            };
        }
        AttemptOutcome::Retry {
            status,
            error,
            next_attempt_at,
        }
    }
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// A transport error as an operator reads it.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {}", humanize(timeout));
    }
    let mut text = if error.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

async fn prune(store: &Store) {
    let before = store.now() - to_delta(KEEP_FINISHED);
    match store.write(move |tx| tx.prune_notifications(before)).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(
            pruned,
            "deleted notifications finished more than 30 days ago"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot delete old notifications"),
    }
}

/// Records an attempt; a final failure is audited in the same transaction.
async fn record(store: &Store, row: &Notification, outcome: AttemptOutcome) {
    let id = row.id;
    let audit = match &outcome {
        AttemptOutcome::Failed { status, error } | AttemptOutcome::Abandoned { status, error } => {
            let action = if matches!(outcome, AttemptOutcome::Failed { .. }) {
                "notification.failed"
            } else {
                "notification.abandoned"
            };
            Some(NewAuditEvent {
                actor: AUDIT_ACTOR.into(),
                action: action.into(),
                subject: format!("notification/{id}"),
                details: json!({
                    "notifier": row.notifier,
                    "topic": row.message.topic.as_str(),
                    "key": row.message.key,
                    "attempts": row.attempts + 1,
                    "status": status,
                    "error": error,
                }),
            })
        }
        _ => None,
    };
    let result = store
        .write(move |tx| {
            let updated = tx.record_notification_attempt(id, &outcome)?;
            if let Some(audit) = &audit {
                tx.append_audit(audit)?;
            }
            Ok(updated)
        })
        .await;
    match result {
        Ok(updated) => log_outcome(&updated),
        Err(e) => tracing::error!(id, error = %e, "cannot record a notification attempt"),
    }
}

fn log_outcome(row: &Notification) {
    let error = row.last_error.as_deref().unwrap_or("");
    match row.state {
        NotificationState::Delivered => tracing::debug!(
            id = row.id,
            notifier = %row.notifier,
            attempts = row.attempts,
            "notification delivered"
        ),
        NotificationState::Skipped => {
            tracing::debug!(id = row.id, notifier = %row.notifier, "notification skipped")
        }
        NotificationState::Pending => tracing::warn!(
            id = row.id,
            notifier = %row.notifier,
            attempts = row.attempts,
            next_attempt_at = %format_time(row.next_attempt_at),
            error,
            "notification not delivered yet; will retry"
        ),
        NotificationState::Failed | NotificationState::Abandoned => tracing::error!(
            id = row.id,
            notifier = %row.notifier,
            attempts = row.attempts,
            state = row.state.as_str(),
            error,
            "notification not delivered"
        ),
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    rampart_store::format_timestamp(&at)
}
