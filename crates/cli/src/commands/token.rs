//! `rampart token create|list|revoke`, offline on the data dir or through the API.

use rampart_api::routes::tokens::{CreatedToken, TokenView};
use reqwest::Method;

use crate::cli::TokenCommand;
use crate::commands::target::{Resolved, resolve};
use crate::exit::{CliError, CliResult};
use crate::output::{emit, print_table};

/// The actor recorded for changes made offline, straight on the data dir.
const OFFLINE_ACTOR: &str = "cli@local";

pub async fn run(command: TokenCommand) -> CliResult {
    match command {
        TokenCommand::Create { target, name, role } => {
            let created = match resolve(&target)? {
                Resolved::Offline(store) => {
                    let role: rampart_store::Role = role.parse().map_err(CliError::usage)?;
                    let (info, secret) = store
                        .with_tx(|tx| {
                            let created = tx.create_token(&name, role)?;
                            tx.append_audit(&rampart_store::NewAuditEvent {
                                actor: OFFLINE_ACTOR.into(),
                                action: "token.create".into(),
                                subject: format!("token/{name}"),
                                details: serde_json::json!({ "role": role.to_string() }),
                            })?;
                            Ok(created)
                        })
                        .map_err(|e| match e {
                            rampart_store::StoreError::TokenNameTaken { .. }
                            | rampart_store::StoreError::InvalidTokenName { .. } => {
                                CliError::usage(e)
                            }
                            other => other.into(),
                        })?;
                    CreatedToken {
                        token: TokenView::from(info),
                        secret,
                    }
                }
                Resolved::Api(client) => {
                    client
                        .request(
                            Method::POST,
                            "/api/v1/tokens",
                            Some(&serde_json::json!({ "name": name, "role": role })),
                        )
                        .await?
                }
            };
            emit(target.api.output, &created, || {
                eprintln!(
                    "created {} token `{}`; this is the only time its secret is shown:",
                    created.token.role, created.token.name
                );
                println!("{}", created.secret);
            });
            Ok(())
        }
        TokenCommand::List { target } => {
            let rows: Vec<TokenView> = match resolve(&target)? {
                Resolved::Offline(store) => store
                    .list_tokens()?
                    .into_iter()
                    .map(TokenView::from)
                    .collect(),
                Resolved::Api(client) => {
                    client.request(Method::GET, "/api/v1/tokens", None).await?
                }
            };
            emit(target.api.output, &rows, || {
                print_table(
                    &["ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.name.clone(),
                                r.role.clone(),
                                r.created_at.clone(),
                                r.last_used_at.clone().unwrap_or_else(|| "-".into()),
                                r.revoked_at.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect::<Vec<_>>(),
                )
            });
            Ok(())
        }
        TokenCommand::Revoke { target, name } => {
            let row = match resolve(&target)? {
                Resolved::Offline(store) => {
                    let info = store.with_tx(|tx| {
                        let info = tx.revoke_token(&name)?;
                        tx.append_audit(&rampart_store::NewAuditEvent {
                            actor: OFFLINE_ACTOR.into(),
                            action: "token.revoke".into(),
                            subject: format!("token/{}", info.name),
                            details: serde_json::json!({}),
                        })?;
                        Ok(info)
                    })?;
                    TokenView::from(info)
                }
                Resolved::Api(client) => {
                    client
                        .request(Method::DELETE, &format!("/api/v1/tokens/{name}"), None)
                        .await?
                }
            };
            emit(target.api.output, &row, || {
                println!("revoked token `{}`", row.name)
            });
            Ok(())
        }
    }
}
