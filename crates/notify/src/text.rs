//! Text helpers shared by the channels.

use rampart_core::notify::Topic;

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A topic as people read it.
pub(crate) fn topic_title(topic: Topic) -> &'static str {
    match topic {
        Topic::IncidentOpened => "Incident opened",
        Topic::IncidentAcknowledged => "Incident acknowledged",
        Topic::IncidentEscalated => "Incident escalated",
        Topic::IncidentResolved => "Incident resolved",
        Topic::RolloutStarted => "Rollout started",
        Topic::RolloutStepAdvanced => "Rollout step advanced",
        Topic::RolloutPaused => "Rollout paused",
        Topic::RolloutPromoted => "Rollout promoted",
        Topic::RolloutRolledBack => "Rollout rolled back",
    }
}

/// What a message key (`incident-42`, `rollout-<id>`) is about: (kind, id).
pub(crate) fn subject_of(key: &str) -> Option<(&str, &str)> {
    let (kind, id) = key.split_once('-')?;
    matches!(kind, "incident" | "rollout").then_some((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters_with_an_ellipsis() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn keys_name_their_subject() {
        assert_eq!(subject_of("incident-42"), Some(("incident", "42")));
        assert_eq!(subject_of("rollout-ab-12"), Some(("rollout", "ab-12")));
        assert_eq!(subject_of("other"), None);
    }
}
