//! First start: make sure an admin can get in.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rampart_engine::SYSTEM_ACTOR;
use rampart_store::{NewAuditEvent, Role, Store, StoreError};

/// When no active admin token exists, creates one, writes it to
/// `data_dir/admin.token` (mode 0600) and returns the secret so it can be printed once.
pub fn ensure_admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if store.has_active_admin_token()? {
        return Ok(None);
    }
    let existing: Vec<String> = store.list_tokens()?.into_iter().map(|t| t.name).collect();
    let name = (1..)
        .map(|n| {
            if n == 1 {
                "admin".to_string()
            } else {
                format!("admin-{n}")
            }
        })
        .find(|candidate| !existing.contains(candidate))
        .unwrap_or_else(|| "admin".into());
    let path = data_dir.join("admin.token");
    let secret = store.with_tx(|tx| {
        let (_, secret) = tx.create_token(&name, Role::Admin)?;
        tx.append_audit(&NewAuditEvent {
            actor: SYSTEM_ACTOR.into(),
            action: "token.create".into(),
            subject: format!("token/{name}"),
            details: serde_json::json!({ "role": "admin", "reason": "first start: no admin token existed" }),
        })?;
        // Written inside the transaction: if the file cannot be written, the token is
        // not created either, so nobody is left without a way in.
        write_secret_file(&path, &secret).map_err(|e| {
            StoreError::Aborted(format!("cannot write {}: {e}", path.display()))
        })?;
        Ok(secret)
    })
    .with_context(|| format!("creating the first admin token in {}", data_dir.display()))?;
    Ok(Some(secret))
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
