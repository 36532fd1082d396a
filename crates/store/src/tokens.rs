//! API bearer tokens. Only a SHA-256 hash of each secret is stored; the secret itself
//! is returned once, at creation.
//!
//! Authentication only reads. When each token was last used is kept in memory and
//! written for all tokens in one transaction by [`Store::flush_token_uses`], which
//! the server calls every [`TOKEN_USE_FLUSH_EVERY`] and at shutdown (and the last
//! store handle does when it is dropped): a durable write per API request would
//! cost more than the request, and would queue viewers' requests in front of a
//! rollback's commit.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError, is_unique_violation};
use crate::sql::{SqlTime, opt_time};
use crate::{Store, TimeSource, Tx};

/// Every secret starts with this, so leaked secrets are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "rpt_";

const NAME_MAX_LEN: usize = 64;

/// How often a server writes the token uses it has seen (see the module docs).
pub const TOKEN_USE_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Token uses seen since the last flush: token id → latest use.
#[derive(Default)]
pub(crate) struct PendingTokenUses {
    latest: Mutex<HashMap<i64, DateTime<Utc>>>,
}

impl PendingTokenUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, DateTime<Utc>>> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note(&self, id: i64, at: DateTime<Utc>) {
        let mut latest = self.lock();
        let entry = latest.entry(id).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Shows uses not yet written, as if they were.
    fn overlay(&self, token: &mut TokenInfo) {
        if let Some(at) = self.lock().get(&token.id) {
            token.last_used_at = Some(token.last_used_at.map_or(*at, |t| t.max(*at)));
        }
    }

    /// Writes every pending use in one transaction on `conn`; on failure they stay
    /// pending for the next flush. Returns how many tokens were updated.
    pub(crate) fn flush(
        &self,
        conn: &mut rusqlite::Connection,
        clock: &TimeSource,
    ) -> Result<usize> {
        let pending = std::mem::take(&mut *self.lock());
        if pending.is_empty() {
            return Ok(0);
        }
        let written = crate::run(
            conn,
            rusqlite::TransactionBehavior::Immediate,
            clock,
            |tx| tx.record_token_uses(&pending),
        );
        match written {
            Ok(_) => Ok(pending.len()),
            Err(e) => {
                for (id, at) in pending {
                    self.note(id, at);
                }
                Err(e)
            }
        }
    }
}

/// What a token may do. Ordered: `Viewer < Operator < Admin`, so "at least operator"
/// is `role >= Role::Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also deploy, promote, roll back, abort.
    Operator,
    /// Also manage tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{given}'; allowed roles are: viewer, operator, admin")]
pub struct ParseRoleError {
    pub given: String,
}

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseRoleError {
                given: s.to_string(),
            })
    }
}

/// A token as listed: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

const TOKEN_COLUMNS: &str = "id, name, role, created_at, last_used_at, revoked_at";

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    let role_text: String = row.get(2)?;
    let role = role_text.parse::<Role>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(TokenInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        role,
        created_at: row.get::<_, SqlTime>(3)?.0,
        last_used_at: opt_time(row, 4)?,
        revoked_at: opt_time(row, 5)?,
    })
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The rule for token names, checked by [`Tx::create_token`] and by callers that
/// want to refuse a bad name before opening a transaction (the API).
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(StoreError::InvalidTokenName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > NAME_MAX_LEN {
        return invalid("it is longer than 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return invalid("use only letters, digits, '-', '_' and '.'");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return invalid("it is all digits, which would be confused with a token id");
    }
    Ok(())
}

impl Tx<'_> {
    /// Creates a token and returns it with its secret (`rpt_` + 64 hex digits from the
    /// OS CSPRNG). The secret is not stored and cannot be shown again.
    pub fn create_token(&self, name: &str, role: Role) -> Result<(TokenInfo, String)> {
        validate_name(name)?;
        let secret = generate_secret()?;
        let created_at = self.now();
        let inserted = self
            .conn()
            .prepare_cached(
                "INSERT INTO tokens (name, role, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                name,
                role.as_str(),
                hash_secret(&secret),
                SqlTime(created_at)
            ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::TokenNameTaken {
                    name: name.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let info = TokenInfo {
            id: self.conn().last_insert_rowid(),
            name: name.to_string(),
            role,
            created_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((info, secret))
    }

    /// The active token whose secret this is, if any, as stored: a read, which
    /// records no use (see [`Store::note_token_use`]).
    pub fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let found = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([hash_secret(secret)], token_from_row)
            .optional()?;
        Ok(found)
    }

    /// Sets `last_used_at` of each token to its given time, unless a later one is
    /// already stored.
    fn record_token_uses(&self, uses: &HashMap<i64, DateTime<Utc>>) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE tokens SET last_used_at = ?1 \
             WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
        )?;
        for (id, at) in uses {
            stmt.execute(params![SqlTime(*at), id])?;
        }
        Ok(())
    }

    /// All tokens, revoked ones included, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))?;
        let tokens = stmt
            .query_map([], token_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(tokens)
    }

    /// Looks a token up by name, or by numeric id (names are never all digits).
    pub fn get_token(&self, name_or_id: &str) -> Result<Option<TokenInfo>> {
        let conn = self.conn();
        let token = match name_or_id.parse::<i64>() {
            Ok(id) => conn
                .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?
                .query_row([id], token_from_row)
                .optional()?,
            Err(_) => conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE name = ?1"
                ))?
                .query_row([name_or_id], token_from_row)
                .optional()?,
        };
        Ok(token)
    }

    /// Revokes a token by name or id. Revoking an already revoked token changes
    /// nothing and returns it with its original `revoked_at`.
    pub fn revoke_token(&self, name_or_id: &str) -> Result<TokenInfo> {
        let Some(mut info) = self.get_token(name_or_id)? else {
            return Err(StoreError::NotFound {
                kind: "token",
                key: name_or_id.to_string(),
            });
        };
        if info.revoked_at.is_none() {
            let now = self.now();
            self.conn()
                .prepare_cached("UPDATE tokens SET revoked_at = ?1 WHERE id = ?2")?
                .execute(params![SqlTime(now), info.id])?;
            info.revoked_at = Some(now);
        }
        Ok(info)
    }

    /// Whether any unrevoked admin token exists (if not, first start creates one).
    pub fn has_active_admin_token(&self) -> Result<bool> {
        let exists = self
            .conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE role = 'admin' AND revoked_at IS NULL)",
            )?
            .query_row([], |row| row.get(0))?;
        Ok(exists)
    }
}

impl Store {
    /// See [`Tx::create_token`]. Callers that also audit the creation should use
    /// [`Store::with_tx`] and do both in one transaction.
    pub fn create_token(&self, name: &str, role: Role) -> Result<(TokenInfo, String)> {
        self.with_tx(|tx| tx.create_token(name, role))
    }

    /// [`Tx::authenticate`] on a read connection, then [`Store::note_token_use`].
    /// Blocks the calling thread; async code runs `tx.authenticate` through
    /// [`Store::read`] and notes the use itself.
    pub fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let mut found = self.read_blocking(|tx| tx.authenticate(secret))?;
        if let Some(token) = &mut found {
            self.note_token_use(token);
        }
        Ok(found)
    }

    /// Remembers that `token` was used now (written at the next flush) and sets its
    /// `last_used_at` to match. Memory only: never waits.
    pub fn note_token_use(&self, token: &mut TokenInfo) {
        let now = self.now();
        self.inner.token_uses.note(token.id, now);
        token.last_used_at = Some(now);
    }

    /// Shows token uses not yet flushed in `tokens`, as if they were written.
    pub fn with_pending_uses(&self, mut tokens: Vec<TokenInfo>) -> Vec<TokenInfo> {
        for token in &mut tokens {
            self.inner.token_uses.overlay(token);
        }
        tokens
    }

    /// Writes the token uses seen since the last flush, in one transaction off the
    /// async runtime. Returns how many tokens were updated.
    pub async fn flush_token_uses(&self) -> Result<usize> {
        let store = self.clone();
        crate::join(tokio::task::spawn_blocking(move || store.flush_token_uses_blocking()).await)
    }

    /// [`Store::flush_token_uses`] on the calling thread.
    pub fn flush_token_uses_blocking(&self) -> Result<usize> {
        let mut conn = self.lock_writer();
        self.inner.token_uses.flush(&mut conn, &self.inner.clock)
    }

    /// See [`Tx::list_tokens`]; includes uses not yet flushed.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let tokens = self.read_blocking(|tx| tx.list_tokens())?;
        Ok(self.with_pending_uses(tokens))
    }

    /// See [`Tx::get_token`]; includes uses not yet flushed.
    pub fn get_token(&self, name_or_id: &str) -> Result<Option<TokenInfo>> {
        let token = self.read_blocking(|tx| tx.get_token(name_or_id))?;
        Ok(token.map(|t| self.with_pending_uses(vec![t]).remove(0)))
    }

    /// See [`Tx::revoke_token`].
    pub fn revoke_token(&self, name_or_id: &str) -> Result<TokenInfo> {
        self.with_tx(|tx| tx.revoke_token(name_or_id))
    }

    /// See [`Tx::has_active_admin_token`].
    pub fn has_active_admin_token(&self) -> Result<bool> {
        self.read_blocking(|tx| tx.has_active_admin_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_case_insensitively() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("Admin".parse::<Role>(), Ok(Role::Admin));
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role 'root'; allowed roles are: viewer, operator, admin"
        );
        assert_eq!(
            serde_json::to_string(&Role::Operator).unwrap(),
            "\"operator\""
        );
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for bad in ["", "has space", "123", &"x".repeat(65)] {
            assert!(
                matches!(validate_name(bad), Err(StoreError::InvalidTokenName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(validate_name("ci-bot_2.prod").is_ok());
    }

    #[test]
    fn secrets_are_prefixed_and_distinct() {
        let a = generate_secret().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, generate_secret().unwrap());
    }
}
