//! The append-only, hash-chained audit log.
//!
//! Every entry carries the hash of the entry before it, so editing, deleting,
//! inserting or reordering any entry breaks the chain at that point, and
//! [`Store::verify_audit`] names the first broken entry. The `meta` table keeps the
//! latest `(seq, hash)`, written in the same transaction as each append, so rows cut
//! off the end are noticed too.
//!
//! What the chain cannot catch on its own: someone with write access to the file who
//! recomputes every hash after their change and also rewrites `meta`. Detecting that
//! needs the head hash kept somewhere else (verify reports it for that purpose).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::sql::{SqlTime, format_timestamp};
use crate::{Store, Tx};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most entries one [`AuditQuery`] returns.
pub const AUDIT_LIST_LIMIT_MAX: u32 = 10_000;

const META_HEAD_SEQ: &str = "audit_head_seq";
const META_HEAD_HASH: &str = "audit_head_hash";

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// Who: a token name, `system`, `engine`, ...
    pub actor: String,
    /// What, as a dotted verb: `deployment.start`, `token.revoke`, ...
    pub action: String,
    /// What it was done to: `service/checkout`, `deployment/<id>`, ...
    pub subject: String,
    /// Anything else worth keeping (reason, versions, weights).
    pub details: Value,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Recomputes this entry's hash from its fields (see [`entry_hash`]).
    pub fn compute_hash(&self) -> String {
        entry_hash(
            self.seq,
            &format_timestamp(&self.at),
            &self.actor,
            &self.action,
            &self.subject,
            &canonical_json(&self.details),
            &self.prev_hash,
        )
    }
}

/// Which entries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries with `seq > after_seq` (for paging and tailing).
    pub after_seq: Option<u64>,
    /// Only entries with `seq < before_seq` (paging newest first: the dashboard's
    /// "older" page).
    pub before_seq: Option<u64>,
    /// At most this many entries; capped at [`AUDIT_LIST_LIMIT_MAX`].
    pub limit: u32,
    pub subject: Option<String>,
    pub action: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            after_seq: None,
            before_seq: None,
            limit: 100,
            subject: None,
            action: None,
            newest_first: false,
        }
    }
}

/// Result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    pub ok: bool,
    /// Entries examined, including the first bad one.
    pub entries_checked: u64,
    /// The first entry that is wrong (or, for truncation, the first missing one).
    pub first_bad_seq: Option<u64>,
    /// What is wrong, as a sentence.
    pub problem: Option<String>,
    /// Hash of the last entry that verified: the chain head when `ok`. Keep it
    /// somewhere else to detect a wholesale rewrite later.
    pub head_hash: Option<String>,
}

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8 bytes at
/// every depth, no whitespace, strings escaped as `serde_json` escapes them, numbers
/// as `serde_json` prints them. Equal values always give equal text, whatever
/// order their keys were inserted in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map keeps insertion order when any crate
            // in the build enables its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn push_json_string(s: &str, out: &mut String) {
    out.push_str(&Value::from(s).to_string());
}

/// The hash of one entry: lowercase hex SHA-256 of the UTF-8 bytes of the JSON array
///
/// ```text
/// [seq,"at","actor","action","subject",details,"prev_hash"]
/// ```
///
/// with no whitespace, where `seq` is a decimal integer, `at` is RFC 3339 UTC with
/// exactly six fractional digits and a `Z` (`2024-05-06T07:08:09.123456Z`), the
/// strings are JSON-escaped, `details` is [`canonical_json`] of the details, and
/// `prev_hash` is the previous entry's hash ([`GENESIS_HASH`] for the first).
/// Because every field is a delimited JSON token, no two different entries encode
/// to the same bytes.
pub fn entry_hash(
    seq: u64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details_canonical: &str,
    prev_hash: &str,
) -> String {
    let mut encoded = String::with_capacity(
        96 + at.len() + actor.len() + action.len() + subject.len() + details_canonical.len(),
    );
    encoded.push('[');
    encoded.push_str(&seq.to_string());
    for field in [at, actor, action, subject] {
        encoded.push(',');
        push_json_string(field, &mut encoded);
    }
    encoded.push(',');
    encoded.push_str(details_canonical);
    encoded.push(',');
    push_json_string(prev_hash, &mut encoded);
    encoded.push(']');
    hex::encode(Sha256::digest(encoded.as_bytes()))
}

impl Tx<'_> {
    /// Appends an entry at the end of the chain. Durable once the transaction commits.
    pub fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEntry> {
        let conn = self.conn();
        // The next seq and prev_hash come from `meta`, not from the table's last row:
        // if rows were cut off the end, the gap stays visible instead of being papered
        // over by the next append.
        let (head_seq, head_hash) = read_head(self)?.unwrap_or((0, GENESIS_HASH.to_string()));
        let max_seq: Option<i64> = conn
            .prepare_cached("SELECT MAX(seq) FROM audit_log")?
            .query_row([], |row| row.get(0))?;
        let max_seq = max_seq.map_or(0, |s| s.max(0) as u64);
        if max_seq > head_seq {
            return Err(StoreError::AuditHeadMismatch { head_seq, max_seq });
        }

        let seq = head_seq + 1;
        let at = self.now();
        let at_text = format_timestamp(&at);
        let details_text = canonical_json(&event.details);
        let hash = entry_hash(
            seq,
            &at_text,
            &event.actor,
            &event.action,
            &event.subject,
            &details_text,
            &head_hash,
        );
        let seq_param = seq_to_sql(seq)?;
        conn.prepare_cached(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            seq_param,
            at_text,
            event.actor,
            event.action,
            event.subject,
            details_text,
            head_hash,
            hash
        ])?;
        let mut set_meta = conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?;
        set_meta.execute(params![META_HEAD_SEQ, seq.to_string()])?;
        set_meta.execute(params![META_HEAD_HASH, hash])?;
        self.audit_appended.set(self.audit_appended.get() + 1);

        Ok(AuditEntry {
            seq,
            at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            subject: event.subject.clone(),
            details: event.details.clone(),
            prev_hash: head_hash,
            hash,
        })
    }

    /// Lists entries matching `query`.
    pub fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let limit = query.limit.min(AUDIT_LIST_LIMIT_MAX);
        let mut sql = String::from(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash \
             FROM audit_log WHERE seq > ?1",
        );
        // Sequence numbers are SQLite integers: nothing lies above i64::MAX, so a
        // larger bound asks for nothing rather than being an error.
        let after = match query.after_seq {
            Some(seq) => i64::try_from(seq).unwrap_or(i64::MAX),
            None => 0,
        };
        let mut params: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(after)];
        if let Some(before) = query.before_seq {
            // Every sequence number lies below a bound past i64::MAX.
            params.push(Box::new(i64::try_from(before).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" AND seq < ?{}", params.len()));
        }
        if let Some(subject) = &query.subject {
            params.push(Box::new(subject.clone()));
            sql.push_str(&format!(" AND subject = ?{}", params.len()));
        }
        if let Some(action) = &query.action {
            params.push(Box::new(action.clone()));
            sql.push_str(&format!(" AND action = ?{}", params.len()));
        }
        sql.push_str(if query.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq ASC"
        });
        params.push(Box::new(i64::from(limit)));
        sql.push_str(&format!(" LIMIT ?{}", params.len()));

        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |row| {
            let seq: i64 = row.get(0)?;
            let details: String = row.get(5)?;
            Ok((
                seq,
                row.get::<_, SqlTime>(1)?.0,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                details,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (seq, at, actor, action, subject, details, prev_hash, hash) = row?;
            let details = serde_json::from_str(&details).map_err(|e| {
                StoreError::Corrupt(format!("audit entry {seq} has unreadable details: {e}"))
            })?;
            entries.push(AuditEntry {
                seq: seq.max(0) as u64,
                at,
                actor,
                action,
                subject,
                details,
                prev_hash,
                hash,
            });
        }
        Ok(entries)
    }

    /// Walks the whole chain in `seq` order, one row at a time, and reports the first
    /// entry that is wrong. Hashes are recomputed from the stored text exactly as it
    /// was written, so verification never depends on re-parsing JSON.
    pub fn verify_audit(&self) -> Result<AuditVerification> {
        let mut stmt = self.conn().prepare(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash \
             FROM audit_log ORDER BY seq ASC",
        )?;
        let mut rows = stmt.query([])?;
        let mut checked: u64 = 0;
        let mut last: Option<(u64, String)> = None;

        let fail = |checked: u64, seq: u64, problem: String, last: &Option<(u64, String)>| {
            AuditVerification {
                ok: false,
                entries_checked: checked,
                first_bad_seq: Some(seq),
                problem: Some(problem),
                head_hash: last.as_ref().map(|(_, h)| h.clone()),
            }
        };

        while let Some(row) = rows.next()? {
            let raw_seq: i64 = row.get(0)?;
            checked += 1;
            let Ok(seq) = u64::try_from(raw_seq) else {
                return Ok(fail(
                    checked,
                    0,
                    format!("entry {raw_seq}: negative sequence number (forged)"),
                    &last,
                ));
            };
            let expected_seq = last.as_ref().map_or(1, |(s, _)| s + 1);
            if seq != expected_seq {
                let problem = match &last {
                    Some((prev, _)) => {
                        format!("entry {seq}: sequence gap after {prev} (entry deleted)")
                    }
                    None => format!(
                        "entry {seq}: the log starts at {seq} instead of 1 (entries deleted)"
                    ),
                };
                return Ok(fail(checked, seq, problem, &last));
            }

            let prev_hash = text_column(row, 6, seq)?;
            let expected_prev = last.as_ref().map_or(GENESIS_HASH, |(_, h)| h.as_str());
            if prev_hash != expected_prev {
                let problem = match &last {
                    Some((prev, _)) => format!(
                        "entry {seq}: prev_hash does not match entry {prev} (inserted or reordered)"
                    ),
                    None => format!(
                        "entry {seq}: prev_hash is not the genesis hash (inserted or reordered)"
                    ),
                };
                return Ok(fail(checked, seq, problem, &last));
            }

            let stored_hash = text_column(row, 7, seq)?;
            let computed = entry_hash(
                seq,
                text_column(row, 1, seq)?,
                text_column(row, 2, seq)?,
                text_column(row, 3, seq)?,
                text_column(row, 4, seq)?,
                text_column(row, 5, seq)?,
                prev_hash,
            );
            if computed != stored_hash {
                return Ok(fail(
                    checked,
                    seq,
                    format!("entry {seq}: hash does not match its contents (edited or forged)"),
                    &last,
                ));
            }
            last = Some((seq, stored_hash.to_string()));
        }

        let table_head = last.as_ref().map_or(0, |(s, _)| *s);
        if let Some((head_seq, head_hash)) = read_head(self)? {
            if head_seq > table_head {
                let problem = format!(
                    "entry {}: missing; the log ends at {table_head} but entry {head_seq} \
                     was recorded (truncated)",
                    table_head + 1
                );
                return Ok(fail(checked, table_head + 1, problem, &last));
            }
            if head_seq < table_head {
                let problem = format!(
                    "entry {}: not in the recorded head (last recorded append was {head_seq}; \
                     forged)",
                    head_seq + 1
                );
                return Ok(fail(checked, head_seq + 1, problem, &last));
            }
            let last_hash = last.as_ref().map_or(GENESIS_HASH, |(_, h)| h.as_str());
            if head_seq > 0 && head_hash != last_hash {
                let problem = format!(
                    "entry {head_seq}: hash differs from the recorded head (log rewritten)"
                );
                return Ok(fail(checked, head_seq, problem, &last));
            }
        } else if table_head > 0 {
            return Ok(fail(
                checked,
                1,
                "entry 1: the recorded head is missing (meta table altered)".to_string(),
                &last,
            ));
        }

        Ok(AuditVerification {
            ok: true,
            entries_checked: checked,
            first_bad_seq: None,
            problem: None,
            head_hash: last.map(|(_, h)| h),
        })
    }
}

/// The recorded chain head from `meta`, if any entry was ever appended.
fn read_head(tx: &Tx<'_>) -> Result<Option<(u64, String)>> {
    let mut stmt = tx
        .conn()
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
    let seq: Option<String> = stmt
        .query_row([META_HEAD_SEQ], |row| row.get(0))
        .optional()?;
    let hash: Option<String> = stmt
        .query_row([META_HEAD_HASH], |row| row.get(0))
        .optional()?;
    match (seq, hash) {
        (None, None) => Ok(None),
        (Some(seq), Some(hash)) => {
            let seq = seq.parse::<u64>().map_err(|_| {
                StoreError::Corrupt(format!(
                    "the recorded audit head seq '{seq}' is not a number"
                ))
            })?;
            Ok(Some((seq, hash)))
        }
        _ => Err(StoreError::Corrupt(
            "the recorded audit head is half missing from the meta table".to_string(),
        )),
    }
}

/// A text column borrowed from the row (no allocation per column while verifying).
fn text_column<'r>(row: &'r rusqlite::Row<'_>, idx: usize, seq: u64) -> Result<&'r str> {
    row.get_ref(idx)?.as_str().map_err(|e| {
        StoreError::Corrupt(format!("audit entry {seq}: column {idx} is not text: {e}"))
    })
}

fn seq_to_sql(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq} out of range")))
}

impl Store {
    /// Appends one entry in its own transaction.
    pub fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEntry> {
        self.with_tx(|tx| tx.append_audit(event))
    }

    /// See [`Tx::list_audit`].
    pub fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.read_blocking(|tx| tx.list_audit(query))
    }

    /// See [`Tx::verify_audit`]. Runs on one consistent snapshot.
    pub fn verify_audit(&self) -> Result<AuditVerification> {
        self.read_blocking(|tx| tx.verify_audit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_without_whitespace() {
        let value = json!({"b": 1, "a": {"z": [true, null, {"y": "x", "c": 1.5}], "d": "é\n"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"d":"é\n","z":[true,null,{"c":1.5,"y":"x"}]},"b":1}"#
        );
    }

    #[test]
    fn entry_hash_is_sha256_of_the_documented_encoding() {
        let encoded =
            r#"[3,"2024-05-06T07:08:09.123456Z","alice","deploy","svc/a",{"k":"v"},"00"]"#;
        let expected = hex::encode(Sha256::digest(encoded.as_bytes()));
        assert_eq!(
            entry_hash(
                3,
                "2024-05-06T07:08:09.123456Z",
                "alice",
                "deploy",
                "svc/a",
                r#"{"k":"v"}"#,
                "00"
            ),
            expected
        );
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let a = entry_hash(1, "t", "ab", "c", "s", "{}", GENESIS_HASH);
        let b = entry_hash(1, "t", "a", "bc", "s", "{}", GENESIS_HASH);
        assert_ne!(a, b);
    }
}
