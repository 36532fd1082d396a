//! Checks on `[[incident_rule]]` and `[[incident_action]]`: conditions parsed once,
//! here, with the error underlined inside the condition text; names, services and
//! actions that exist; keys that fit the action's kind.

use std::collections::HashSet;

use rampart_core::incident;

use crate::diagnostic::Finding;
use crate::incidents::{ActionKind, IncidentActionConfig};
use crate::model::Config;
use crate::rules;
use crate::semantic::Checker;
use crate::suggest::closest;

impl Checker<'_, '_> {
    pub(crate) fn incidents(&mut self, config: &Config) {
        let mut seen = HashSet::new();
        for (index, action) in config.incident_actions.iter().enumerate() {
            self.incident_action(action, &format!("incident_action.{index}"), &mut seen);
        }
        let mut names = HashSet::new();
        for (index, rule) in config.incident_rules.iter().enumerate() {
            let path = format!("incident_rule.{index}");
            let name_span = self.at.span(&format!("{path}.name"));
            if !rules::is_valid_name(&rule.name) {
                self.push(
                    Finding::new(
                        name_span.clone(),
                        format!("invalid rule name `{}`", rule.name),
                        "only a-z, 0-9, `-` and `_` are allowed",
                    )
                    .help(format!(
                        "rule names appear in URLs and messages; for example `{}`",
                        rules::name_like(&rule.name)
                    )),
                );
            }
            if !names.insert(rule.name.as_str()) {
                self.push(
                    Finding::new(name_span, format!("duplicate incident rule `{}`", rule.name), "this name is already taken")
                        .help("each [[incident_rule]] needs its own name; a rule named like a default replaces the default"),
                );
            }
            if !rule.when.is_empty() {
                self.condition(&rule.when, &format!("{path}.when"));
            } else if rule.enabled {
                self.push(
                    Finding::new(
                        self.at.span(&path),
                        format!("missing key `when` in [[incident_rule]] `{}`", rule.name),
                        "an enabled rule needs a condition",
                    )
                    .help("add `when = \"service.error_rate > 5% for 30s\"`, or `enabled = false` to remove a default rule of this name"),
                );
            }
            if rule.service != "*" && config.service(&rule.service).is_none() {
                let known: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
                let help = match closest(&rule.service, &known) {
                    Some(near) => format!("did you mean `{near}`? or \"*\" for every service"),
                    None => format!(
                        "write \"*\" for every service, or one of: {}",
                        if known.is_empty() {
                            "(no services)".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                };
                self.push(
                    Finding::new(
                        self.at.span(&format!("{path}.service")),
                        format!("no service is called `{}`", rule.service),
                        "unknown service",
                    )
                    .help(help),
                );
            }
            for (i, action) in rule.actions.iter().enumerate() {
                if config.incident_action(action).is_some() {
                    continue;
                }
                let span = self.at.span(&format!("{path}.actions.{i}"));
                let (message, help) = match ActionKind::parse(action) {
                    Some(kind) => (
                        format!(
                            "action kind `{}` needs an [[incident_action]] with its settings",
                            kind.as_str()
                        ),
                        format!(
                            "define it: [[incident_action]] name = \"{action}\" kind = \"{action}\" command = \"...\", then list its name here"
                        ),
                    ),
                    None => {
                        let mut known: Vec<&str> = ActionKind::ALL
                            .iter()
                            .filter(|k| !k.needs_definition())
                            .map(|k| k.as_str())
                            .collect();
                        known.extend(config.incident_actions.iter().map(|a| a.name.as_str()));
                        let help = match closest(action, &known) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!(
                                "actions are built-in kinds or [[incident_action]] names: {}",
                                known.join(", ")
                            ),
                        };
                        (format!("unknown action `{action}`"), help)
                    }
                };
                self.push(Finding::new(span, message, "not an action").help(help));
            }
            if let Some(policy) = &rule.escalation
                && config.escalation(policy).is_none()
            {
                let known: Vec<&str> = config.escalations.iter().map(|e| e.name.as_str()).collect();
                let help = match closest(policy, &known) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None if known.is_empty() => {
                        "no [[escalation]] is configured; add one with this name".into()
                    }
                    None => format!("the escalation policies are: {}", known.join(", ")),
                };
                self.push(
                    Finding::new(
                        self.at.span(&format!("{path}.escalation")),
                        format!("unknown escalation policy `{policy}`"),
                        "no [[escalation]] has this name",
                    )
                    .help(help),
                );
            }
        }
    }

    /// Parses the condition; an error is underlined at its exact word when the
    /// string is written without escapes, or the whole string otherwise.
    fn condition(&mut self, text: &str, path: &str) {
        let Err(error) = incident::parse(text) else {
            return;
        };
        let value = self.at.span(path);
        let inner = value.start + 1;
        let literal = self
            .at
            .text(&value)
            .is_some_and(|raw| raw.len() == text.len() + 2 && raw[1..raw.len() - 1] == *text);
        let span = if literal {
            let start = inner + error.span.start;
            // An error at the very end underlines the closing quote.
            start..(inner + error.span.end).max(start + 1)
        } else {
            value
        };
        let mut help = error.help.unwrap_or_default();
        if help.is_empty() {
            help = "write `metric > value [for duration]`, joined with `and`/`or`, such as \"service.error_rate > 5% for 30s\"".into();
        }
        self.push(
            Finding::new(
                span,
                format!("invalid condition: {}", error.message),
                error.label,
            )
            .help(help),
        );
    }

    fn incident_action<'c>(
        &mut self,
        action: &'c IncidentActionConfig,
        path: &str,
        seen: &mut HashSet<&'c str>,
    ) {
        let name_span = self.at.span(&format!("{path}.name"));
        if !rules::is_valid_name(&action.name) {
            self.push(
                Finding::new(
                    name_span.clone(),
                    format!("invalid action name `{}`", action.name),
                    "only a-z, 0-9, `-` and `_` are allowed",
                )
                .help(format!("for example `{}`", rules::name_like(&action.name))),
            );
        }
        if !seen.insert(action.name.as_str()) {
            self.push(
                Finding::new(
                    name_span.clone(),
                    format!("duplicate incident action `{}`", action.name),
                    "this name is already taken",
                )
                .help("each [[incident_action]] needs its own name"),
            );
        }
        if let Some(builtin) = ActionKind::parse(&action.name).filter(|k| *k != action.kind) {
            self.push(
                Finding::new(name_span, format!("action `{}` is named after the built-in kind `{}` but is of kind `{}`", action.name, builtin.as_str(), action.kind.as_str()), "misleading name")
                    .help("a name equal to a built-in kind changes that kind's settings, so it must have that kind; pick another name"),
            );
        }
        let kind = action.kind.as_str();
        for (key, set, kinds) in action.kind_keys() {
            if set && !kinds.contains(&action.kind) {
                let takers: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                self.push(
                    Finding::new(
                        self.at.span(&format!("{path}.{key}")),
                        format!("`{key}` does nothing for a `{kind}` action"),
                        format!("only for {}", takers.join(" and ")),
                    )
                    .help(format!("remove `{key}`, or use kind = \"{}\"", takers[0])),
                );
            }
        }
        if action.kind == ActionKind::Run {
            match (&action.command, &action.url) {
                (None, None) => self.push(
                    Finding::new(self.at.span(&format!("{path}.kind")), "a `run` action needs `command` or `url`", "nothing to run")
                        .help("add command = \"./script.sh\" (run through sh -c) or url = \"http://…\" (receives the incident as JSON)"),
                ),
                (Some(_), Some(_)) => self.push(
                    Finding::new(self.at.span(&format!("{path}.url")), "a `run` action takes `command` or `url`, not both", "one too many")
                        .help("split it into two [[incident_action]] tables"),
                ),
                (Some(command), None) if command.trim().is_empty() => self.push(
                    Finding::new(self.at.span(&format!("{path}.command")), "empty command", "nothing to run").help("write the command to run through sh -c"),
                ),
                (None, Some(url)) => {
                    if let Some(problem) = rules::http_url_problem(url) {
                        self.push(Finding::new(self.at.span(&format!("{path}.url")), format!("invalid url: {problem}"), problem).help("write an absolute http:// or https:// URL"));
                    }
                }
                _ => {}
            }
        }
        if action.by.is_some() && action.factor.is_some() {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.factor")),
                    "`by` and `factor` both set",
                    "one too many",
                )
                .help("scale up by a number of instances or by a factor, not both"),
            );
        }
        if let Some(factor) = action
            .factor
            .filter(|f| !(f.is_finite() && *f > 1.0 && *f <= 100.0))
        {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.factor")),
                    format!("`factor` is {factor}"),
                    "must be above 1 and at most 100",
                )
                .help("for example factor = 2.0 doubles the instances"),
            );
        }
        if action.max_per_window == 0 {
            self.push(
                Finding::new(
                    self.at.span(&format!("{path}.max_per_window")),
                    "`max_per_window` is 0",
                    "the action could never run",
                )
                .help("allow at least 1, or remove the action from the rules"),
            );
        }
    }
}
