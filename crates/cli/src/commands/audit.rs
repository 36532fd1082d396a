//! `rampart audit list|verify`.

use rampart_api::routes::audit::{AuditEntryView, AuditVerificationView};
use reqwest::Method;

use crate::cli::{AuditCommand, OutputFormat};
use crate::commands::target::{Resolved, resolve};
use crate::exit::{CliError, CliResult, FAILURE};
use crate::output::{emit, print_table};

pub async fn run(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::List {
            target,
            after,
            limit,
            subject,
            action,
        } => {
            let rows: Vec<AuditEntryView> = match resolve(&target)? {
                Resolved::Offline(store) => {
                    let entries = store.list_audit(&rampart_store::AuditQuery {
                        after_seq: after,
                        limit,
                        subject,
                        action,
                        newest_first: false,
                        before_seq: None,
                    })?;
                    entries.into_iter().map(AuditEntryView::from).collect()
                }
                Resolved::Api(client) => {
                    let mut query = vec![format!("limit={limit}")];
                    if let Some(a) = after {
                        query.push(format!("after_seq={a}"));
                    }
                    if let Some(s) = subject {
                        query.push(format!("subject={}", encode(&s)));
                    }
                    if let Some(a) = action {
                        query.push(format!("action={}", encode(&a)));
                    }
                    client
                        .request(
                            Method::GET,
                            &format!("/api/v1/audit?{}", query.join("&")),
                            None,
                        )
                        .await?
                }
            };
            emit(target.api.output, &rows, || {
                print_table(
                    &["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.seq.to_string(),
                                r.at.clone(),
                                r.actor.clone(),
                                r.action.clone(),
                                r.subject.clone(),
                                r.details.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                )
            });
            Ok(())
        }
        AuditCommand::Verify { target } => {
            let verification: AuditVerificationView = match resolve(&target)? {
                Resolved::Offline(store) => store.verify_audit()?.into(),
                Resolved::Api(client) => {
                    client
                        .request(Method::GET, "/api/v1/audit/verify", None)
                        .await?
                }
            };
            emit(target.api.output, &verification, || {
                if verification.ok {
                    println!(
                        "audit log verified: {} entries, head {}",
                        verification.entries_checked,
                        verification.head_hash.as_deref().unwrap_or("(empty)")
                    );
                }
            });
            if verification.ok {
                Ok(())
            } else {
                let first = verification
                    .first_bad_seq
                    .map(|s| format!("first bad entry: #{s}"))
                    .unwrap_or_else(|| "first bad entry unknown".into());
                let problem = verification.problem.unwrap_or_default();
                if matches!(target.api.output, OutputFormat::Table) {
                    eprintln!("audit log FAILED verification: {first}: {problem}");
                }
                Err(CliError {
                    code: FAILURE,
                    error: anyhow::anyhow!("audit log failed verification ({first})"),
                })
            }
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
