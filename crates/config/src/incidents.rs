//! `[[incident_rule]]` and `[[incident_action]]`: when rampart opens an incident,
//! and what it does about it. The three rules of the original specification are
//! defaults ([`rampart_core::incident::DEFAULT_RULES`]); a rule of the same name
//! replaces one, and `enabled = false` removes it.

use rampart_core::incident::DEFAULT_RULES;
use rampart_core::notify::Severity;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::model::Config;

/// One `[[incident_rule]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRuleConfig {
    pub name: String,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// The condition, such as "service.error_rate > 5% for 30s" (see
    /// `rampart_core::incident`). Required unless `enabled = false`: removing a
    /// default rule needs only its name.
    #[serde(default)]
    pub when: String,
    /// A service name, or "*" for every service (rules on host or security metrics
    /// run once, whatever this says).
    #[serde(default = "default_rule_service")]
    pub service: String,
    /// Built-in action kinds or names of `[[incident_action]]`, run in this order
    /// when the incident opens.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Names of notifiers told about every change of the incident.
    #[serde(default)]
    pub notify: Vec<String>,
    /// An incident still unacknowledged this long after opening escalates.
    pub escalate_after: Option<Duration>,
    /// An `[[escalation]]` policy: its steps notify their notifiers while the
    /// incident stays unacknowledged (instead of `escalate_after`'s single step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// The condition must stay clear this long before the incident resolves itself.
    #[serde(default = "default_resolve_after")]
    pub resolve_after: Duration,
    /// `false` removes a default rule of this name.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Record what every action would have done, without doing it.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_severity() -> Severity {
    Severity::High
}
fn default_rule_service() -> String {
    "*".into()
}
fn default_resolve_after() -> Duration {
    Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Rollback,
    ScaleUp,
    EmergencyScaleUp,
    CircuitBreaker,
    ShedLoad,
    FreezeDeploys,
    LockDown,
    IsolateInstance,
    Run,
}

impl ActionKind {
    pub const ALL: [ActionKind; 9] = [
        ActionKind::Rollback,
        ActionKind::ScaleUp,
        ActionKind::EmergencyScaleUp,
        ActionKind::CircuitBreaker,
        ActionKind::ShedLoad,
        ActionKind::FreezeDeploys,
        ActionKind::LockDown,
        ActionKind::IsolateInstance,
        ActionKind::Run,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Rollback => "rollback",
            ActionKind::ScaleUp => "scale_up",
            ActionKind::EmergencyScaleUp => "emergency_scale_up",
            ActionKind::CircuitBreaker => "circuit_breaker",
            ActionKind::ShedLoad => "shed_load",
            ActionKind::FreezeDeploys => "freeze_deploys",
            ActionKind::LockDown => "lock_down",
            ActionKind::IsolateInstance => "isolate_instance",
            ActionKind::Run => "run",
        }
    }

    pub fn parse(text: &str) -> Option<ActionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Kinds that need settings of their own, so cannot be named bare in `actions`.
    pub fn needs_definition(self) -> bool {
        matches!(self, ActionKind::Run)
    }
}

/// One `[[incident_action]]`: an action with its settings and guards. Its name is
/// what rules list in `actions`; naming it after a built-in kind changes that
/// kind's settings for every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentActionConfig {
    pub name: String,
    pub kind: ActionKind,
    /// After running, the action does not run again for the same service this long.
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
    /// At most this many runs per service within `window`.
    #[serde(default = "default_max_per_window")]
    pub max_per_window: u32,
    #[serde(default = "default_window")]
    pub window: Duration,
    /// Record what would have happened, without doing it.
    #[serde(default)]
    pub dry_run: bool,
    /// Attempts after a failure before the incident escalates.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// How long one attempt may take.
    #[serde(default = "default_action_timeout")]
    pub timeout: Duration,
    /// `run`: a command run through `sh -c` (incident fields in the environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `run`: a URL that receives the incident as JSON (POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `lock_down`: API tokens created this recently are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_tokens_created_within: Option<Duration>,
    /// `shed_load`: how often the limit is raised one step after the incident resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lift_every: Option<Duration>,
    /// `scale_up`/`emergency_scale_up`: instances added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<u32>,
    /// `scale_up`/`emergency_scale_up`: multiply the instances by this instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// `scale_up`/`emergency_scale_up`: never more instances than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}
fn default_max_per_window() -> u32 {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_retries() -> u32 {
    2
}
fn default_action_timeout() -> Duration {
    Duration::from_secs(30)
}

impl IncidentActionConfig {
    /// A built-in kind with its default settings.
    pub fn builtin(kind: ActionKind) -> Self {
        Self {
            name: kind.as_str().into(),
            kind,
            cooldown: default_cooldown(),
            max_per_window: default_max_per_window(),
            window: default_window(),
            dry_run: false,
            retries: default_retries(),
            timeout: default_action_timeout(),
            command: None,
            url: None,
            revoke_tokens_created_within: None,
            lift_every: None,
            by: None,
            factor: None,
            max: None,
        }
    }

    /// The keys only some kinds take: `(key, set here, kinds that take it)`.
    pub(crate) fn kind_keys(&self) -> [(&'static str, bool, &'static [ActionKind]); 7] {
        const SCALE: &[ActionKind] = &[ActionKind::ScaleUp, ActionKind::EmergencyScaleUp];
        [
            ("command", self.command.is_some(), &[ActionKind::Run]),
            ("url", self.url.is_some(), &[ActionKind::Run]),
            (
                "revoke_tokens_created_within",
                self.revoke_tokens_created_within.is_some(),
                &[ActionKind::LockDown],
            ),
            (
                "lift_every",
                self.lift_every.is_some(),
                &[ActionKind::ShedLoad],
            ),
            ("by", self.by.is_some(), SCALE),
            ("factor", self.factor.is_some(), SCALE),
            ("max", self.max.is_some(), SCALE),
        ]
    }
}

impl Config {
    /// The rules in force: the defaults, replaced by rules of the same name, then the
    /// config's other rules; disabled ones left out.
    pub fn incident_rules(&self) -> Vec<IncidentRuleConfig> {
        let mut rules: Vec<IncidentRuleConfig> = DEFAULT_RULES
            .iter()
            .filter(|d| !self.incident_rules.iter().any(|r| r.name == d.name))
            .map(|d| IncidentRuleConfig {
                name: d.name.into(),
                severity: d.severity,
                when: d.when.into(),
                service: default_rule_service(),
                actions: d.actions.iter().map(|a| a.to_string()).collect(),
                notify: Vec::new(),
                escalate_after: Some(Duration::from_secs(15 * 60)),
                escalation: None,
                resolve_after: default_resolve_after(),
                enabled: true,
                dry_run: false,
            })
            .collect();
        rules.extend(self.incident_rules.iter().cloned());
        rules.retain(|r| r.enabled);
        rules
    }

    /// The action a rule's `actions` entry names: an `[[incident_action]]` of that
    /// name, or a built-in kind with default settings.
    pub fn incident_action(&self, name: &str) -> Option<IncidentActionConfig> {
        self.incident_actions
            .iter()
            .find(|a| a.name == name)
            .cloned()
            .or_else(|| {
                ActionKind::parse(name)
                    .filter(|k| !k.needs_definition())
                    .map(IncidentActionConfig::builtin)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "[[service]]\nname = \"shop\"\nlisten = \"127.0.0.1:8080\"\nbackend = { kind = \"static\", stable = [\"127.0.0.1:9001\"] }\n";

    fn rules(extra: &str) -> Vec<IncidentRuleConfig> {
        crate::parse(&format!("{SERVICE}{extra}"), "t.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .incident_rules()
    }

    #[test]
    fn the_three_defaults_apply_without_config() {
        let names: Vec<String> = rules("").into_iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "high_error_rate",
                "system_overload",
                "security_breach_detected"
            ]
        );
    }

    #[test]
    fn a_rule_of_the_same_name_replaces_a_default_and_enabled_false_removes_one() {
        let rules = rules(
            "[[incident_rule]]\nname = \"high_error_rate\"\nwhen = \"service.error_rate > 2%\"\nseverity = \"critical\"\n\
             [[incident_rule]]\nname = \"system_overload\"\nwhen = \"host.cpu > 1%\"\nenabled = false\n",
        );
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["security_breach_detected", "high_error_rate"]);
        assert_eq!(rules[1].when, "service.error_rate > 2%");
        assert_eq!(rules[1].severity, Severity::Critical);
    }

    #[test]
    fn a_default_rule_is_removed_by_its_name_alone_but_an_enabled_rule_needs_when() {
        let names: Vec<String> =
            rules("[[incident_rule]]\nname = \"system_overload\"\nenabled = false\n")
                .into_iter()
                .map(|r| r.name)
                .collect();
        assert_eq!(names, ["high_error_rate", "security_breach_detected"]);

        let error = crate::parse(
            &format!("{SERVICE}[[incident_rule]]\nname = \"slow\"\n"),
            "t.toml",
        )
        .expect_err("an enabled rule without a condition");
        let text = error.to_string();
        assert!(
            text.contains("missing key `when` in [[incident_rule]] `slow`"),
            "{text}"
        );
        assert!(text.contains("enabled = false"), "{text}");
    }

    #[test]
    fn actions_resolve_to_definitions_or_builtins() {
        let config = crate::parse(
            &format!("{SERVICE}[[incident_action]]\nname = \"rollback\"\nkind = \"rollback\"\ncooldown = \"1m\"\n"),
            "t.toml",
        )
        .expect("loads");
        assert_eq!(
            config.incident_action("rollback").map(|a| a.cooldown),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            config.incident_action("shed_load").map(|a| a.kind),
            Some(ActionKind::ShedLoad)
        );
        assert_eq!(
            config.incident_action("run"),
            None,
            "run needs a definition"
        );
    }

    #[test]
    fn keys_of_another_kind_and_run_without_target_are_errors() {
        let error = crate::parse(
            &format!("{SERVICE}[[incident_action]]\nname = \"x\"\nkind = \"rollback\"\ncommand = \"true\"\n[[incident_action]]\nname = \"y\"\nkind = \"run\"\n"),
            "t.toml",
        )
        .expect_err("invalid");
        let text = error.to_string();
        assert!(
            text.contains("`command` does nothing for a `rollback` action"),
            "{text}"
        );
        assert!(
            text.contains("a `run` action needs `command` or `url`"),
            "{text}"
        );
    }
}
