//! Human durations ("500ms", "30s", "5m", "1h 30m") that must be positive and at
//! most [`MAX_DURATION`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration any setting takes: longer than any sensible hold, delay or
/// timeout, and far from where `Instant + duration` overflows (which panicked, or
/// hung a rollback waiting for a drain that could never be reached).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A strictly positive duration of at most [`MAX_DURATION`], written as text in the
/// config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Why a duration text was rejected; `Display` is the full sentence a user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Negative {
        text: String,
    },
    Zero {
        text: String,
    },
    TooLong {
        text: String,
    },
    /// Not a number with a unit; `reason` is the parser's explanation.
    Malformed {
        text: String,
        reason: String,
    },
}

impl DurationError {
    /// A short reason, suitable as a label under the offending text.
    pub fn reason(&self) -> String {
        match self {
            Self::Negative { .. } => "durations cannot be negative".into(),
            Self::Zero { .. } => "a duration must be greater than zero".into(),
            Self::TooLong { .. } => "durations are at most 30 days".into(),
            Self::Malformed { reason, .. } => reason.clone(),
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Negative { .. } | Self::Zero { .. } => {
                "write a positive duration, such as \"1s\" or \"30s\""
            }
            Self::Malformed { .. } => {
                "write a number with a unit, such as \"500ms\", \"30s\", \"5m\" or \"1h\""
            }
            Self::TooLong { .. } => "write a duration of 30 days (\"30d\") or less",
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Negative { text }
            | Self::Zero { text }
            | Self::TooLong { text }
            | Self::Malformed { text, .. } => text,
        };
        write!(
            f,
            "invalid duration \"{text}\": {}; {}",
            self.reason(),
            self.hint()
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration, rejecting zero, negative and overlong ones.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative { text: text.into() });
    }
    let parsed = humantime::parse_duration(trimmed).map_err(|e| DurationError::Malformed {
        text: text.into(),
        reason: e.to_string(),
    })?;
    if parsed.is_zero() {
        return Err(DurationError::Zero { text: text.into() });
    }
    if parsed > MAX_DURATION {
        return Err(DurationError::TooLong { text: text.into() });
    }
    Ok(Duration(parsed))
}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

/// Parses a duration, rejecting zero; the error text is what the user sees.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration as a string, such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_positive(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) has no unit; write it as a string such as \"{v}s\""
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) has no unit; write it as a string such as \"{v}s\""
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_at_30_days() {
        assert_eq!(parse("30d").map(Duration::get), Ok(MAX_DURATION));
        assert_eq!(
            parse("30d 1s"),
            Err(DurationError::TooLong {
                text: "30d 1s".into()
            })
        );
        // Far beyond what `Instant + duration` can hold.
        assert!(matches!(
            parse("18446744073709551615s"),
            Err(DurationError::TooLong { .. })
        ));
        assert!(
            std::time::Instant::now()
                .checked_add(MAX_DURATION)
                .is_some()
        );
    }
}
