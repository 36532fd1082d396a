//! Column encodings shared by every table: timestamps as RFC 3339 text and JSON
//! documents as text, plus random ids.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rand::RngCore;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde_json::Value;

/// Formats a timestamp the one way the store writes it: RFC 3339, UTC, exactly six
/// fractional digits and a `Z` suffix. A fixed width keeps text order equal to time
/// order, so `ORDER BY created_at` sorts chronologically.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Drops sub-microsecond precision, so a value survives a round trip through the
/// store unchanged (and hashes the same before and after).
pub(crate) fn to_stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A fresh random id: 16 bytes from the thread-local CSPRNG, as 32 hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A timestamp column.
pub(crate) struct SqlTime(pub DateTime<Utc>);

impl ToSql for SqlTime {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(format_timestamp(&self.0)))
    }
}

impl FromSql for SqlTime {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| SqlTime(t.with_timezone(&Utc)))
            .map_err(|e| FromSqlError::Other(format!("bad timestamp '{text}': {e}").into()))
    }
}

/// A JSON document column.
pub(crate) struct SqlJson(pub Value);

impl ToSql for SqlJson {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.to_string()))
    }
}

impl FromSql for SqlJson {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        serde_json::from_str(text)
            .map(SqlJson)
            .map_err(|e| FromSqlError::Other(format!("bad JSON document: {e}").into()))
    }
}

/// Borrowed view of a JSON value for binding without a clone.
pub(crate) struct SqlJsonRef<'a>(pub &'a Value);

impl ToSql for SqlJsonRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.to_string()))
    }
}

/// Reads an optional timestamp column.
pub(crate) fn opt_time(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(row.get::<_, Option<SqlTime>>(idx)?.map(|t| t.0))
}

/// Clamps a caller's row limit into SQLite's integer range.
pub(crate) fn limit_param(limit: u32) -> i64 {
    i64::from(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_fixed_width_micros_and_z() {
        let at = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).single().unwrap();
        assert_eq!(format_timestamp(&at), "2024-05-06T07:08:09.000000Z");
    }

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
