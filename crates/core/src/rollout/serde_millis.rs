//! `Duration` as whole milliseconds in JSON, so persisted rollouts read as plain
//! numbers (`"hold_ms": 30000`) instead of serde's `{secs, nanos}` pair.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    // Saturate rather than fail: no configured duration comes near u64 milliseconds.
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    serializer.serialize_u64(ms)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}
