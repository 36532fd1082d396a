//! Where incident notifications leave: one [`Message`] per notifier of the rule,
//! written in the same transaction as the change it reports.
//!
//! Until the store's notification outbox exists (`Tx::enqueue_notification`, built
//! alongside), the message is recorded on the incident's timeline as a
//! `notification` event with status `pending`: the one call to swap when it lands.

use rampart_core::notify::Message;
use rampart_store::{Result, Tx};
use serde_json::json;

use crate::shared::SYSTEM_ACTOR;

/// Queues `message` for each notifier, in `tx`.
pub(crate) fn notify(
    tx: &Tx<'_>,
    incident_id: &str,
    notifiers: &[String],
    message: &Message,
) -> Result<()> {
    for notifier in notifiers {
        tx.add_incident_event(
            incident_id,
            "notification",
            SYSTEM_ACTOR,
            &json!({
                "notifier": notifier,
                "status": "pending",
                "message": message,
            }),
        )?;
    }
    Ok(())
}
