//! Where incident notifications leave: one [`Message`] per notifier of the rule,
//! written to the store's outbox in the same transaction as the change it reports,
//! so a committed change always has its notifications and a rolled-back one never
//! does. The delivery worker (`rampart_notify`) sends them at least once; the
//! incident's timeline names each queued notification, whose delivery status is in
//! `GET /api/v1/notifications`.

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
        let notification_id = tx.enqueue_notification(notifier, message)?;
        tx.add_incident_event(
            incident_id,
            "notification",
            SYSTEM_ACTOR,
            &json!({
                "notifier": notifier,
                "notification_id": notification_id,
                "status": "queued",
                "message": message,
            }),
        )?;
    }
    Ok(())
}
