//! `rampart notifications`: the outbox and how each delivery went.

use rampart_api::routes::notifications::NotificationView;
use rampart_store::{NotificationQuery, NotificationState};
use reqwest::Method;

use crate::cli::NotificationsArgs;
use crate::commands::audit::encode;
use crate::commands::target::{Resolved, resolve};
use crate::exit::{CliError, CliResult};
use crate::output::{emit, print_table};

pub async fn run(args: NotificationsArgs) -> CliResult {
    let NotificationsArgs {
        target,
        state,
        notifier,
        key,
        limit,
    } = args;
    let wanted = match state.as_deref() {
        None => None,
        Some(text) => Some(NotificationState::parse(text).ok_or_else(|| {
            CliError::usage(anyhow::anyhow!(
                "--state {text} is not a notification state; use one of {}",
                NotificationState::ALL
                    .map(NotificationState::as_str)
                    .join(", ")
            ))
        })?),
    };
    let rows: Vec<NotificationView> = match resolve(&target)? {
        Resolved::Offline(store) => store
            .list_notifications(&NotificationQuery {
                state: wanted,
                notifier,
                key,
                before_id: None,
                limit,
            })?
            .into_iter()
            .map(NotificationView::from)
            .collect(),
        Resolved::Api(client) => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(state) = wanted {
                query.push(format!("state={}", state.as_str()));
            }
            if let Some(notifier) = notifier {
                query.push(format!("notifier={}", encode(&notifier)));
            }
            if let Some(key) = key {
                query.push(format!("key={}", encode(&key)));
            }
            client
                .request(
                    Method::GET,
                    &format!("/api/v1/notifications?{}", query.join("&")),
                    None,
                )
                .await?
        }
    };
    emit(target.api.output, &rows, || {
        print_table(
            &[
                "ID", "CREATED", "NOTIFIER", "TOPIC", "KEY", "STATE", "TRIES", "LAST",
            ],
            &rows
                .iter()
                .map(|r| {
                    let last = match (r.last_status, &r.last_error) {
                        (_, Some(error)) => error.clone(),
                        (Some(status), None) => status.to_string(),
                        (None, None) => String::new(),
                    };
                    vec![
                        r.id.to_string(),
                        r.created_at.clone(),
                        r.notifier.clone(),
                        r.topic.clone(),
                        r.key.clone(),
                        r.state.clone(),
                        r.attempts.to_string(),
                        last,
                    ]
                })
                .collect::<Vec<_>>(),
        )
    });
    Ok(())
}
