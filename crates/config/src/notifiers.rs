//! `[[notifier]]` and `[[escalation]]`: where notifications go and who is told when
//! an incident stays unacknowledged. Checked here for meaning (unique names, URLs,
//! rates, references); the structure check already placed every key and type.

use crate::diagnostic::Finding;
use crate::locate::Locator;
use crate::model::{Config, NotifierConfig};
use crate::rules;
use crate::suggest::closest;

const NAME_RULE: &str = "names may use only lowercase letters a-z, digits, `-` and `_`, because they appear in URLs and metric labels";

pub(crate) fn check(config: &Config, at: &Locator<'_, '_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let names: Vec<&str> = config.notifiers.iter().map(NotifierConfig::name).collect();
    for (index, notifier) in config.notifiers.iter().enumerate() {
        let path = format!("notifier.{index}");
        name(&mut findings, at, &names, index, &path);
        let common = notifier.delivery();
        if let Some(rate) = common.rate_limit
            && !(rate > 0.0 && rate <= 1000.0)
        {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.rate_limit")),
                    format!("`rate_limit` is out of range: {rate}"),
                    "must be above 0 and at most 1000 messages a second",
                )
                .help(format!(
                    "the default for {} is {} a second",
                    notifier.kind_name(),
                    notifier.default_rate_limit()
                )),
            );
        }
        if common.timeout.get() > std::time::Duration::from_secs(300) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.timeout")),
                    format!("`timeout` is too long: {}", common.timeout),
                    "at most 5m",
                )
                .help("a receiver that takes longer is treated as down and retried; 10s is the default"),
            );
        }
        if let Some(url) = notifier.url()
            && let Some(problem) = rules::http_url_problem(url)
        {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.url")),
                    format!("invalid notifier URL `{url}`"),
                    problem,
                )
                .help(match notifier {
                    NotifierConfig::Slack(_) => {
                        "use the incoming webhook URL Slack gives, such as \"https://hooks.slack.com/services/T000/B000/XXXX\""
                    }
                    _ => "write an absolute URL, such as \"https://hooks.example.com/rampart\"",
                }),
            );
        }
        if let NotifierConfig::Pagerduty(pd) = notifier
            && pd.routing_key.trim().is_empty()
        {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.routing_key")),
                    "empty PagerDuty `routing_key`",
                    "PagerDuty would refuse every event",
                )
                .help("copy the 32-character integration key of the service's Events API v2 integration"),
            );
        }
        if let NotifierConfig::Webhook(hook) = notifier
            && hook.secret.as_deref().is_some_and(|s| s.len() < 16)
        {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.secret")),
                    "webhook `secret` is shorter than 16 characters",
                    "too short to sign with",
                )
                .help("use a random secret of at least 16 characters, such as the output of `openssl rand -hex 32`"),
            );
        }
    }
    for (index, service) in config.services.iter().enumerate() {
        for (position, target) in service.notify_rollouts.iter().enumerate() {
            reference(
                &mut findings,
                at,
                &names,
                target,
                &format!("service.{index}.notify_rollouts.{position}"),
            );
        }
    }
    for (index, rule) in config.incident_rules.iter().enumerate() {
        for (position, target) in rule.notify.iter().enumerate() {
            reference(
                &mut findings,
                at,
                &names,
                target,
                &format!("incident_rule.{index}.notify.{position}"),
            );
        }
    }
    let policies: Vec<&str> = config.escalations.iter().map(|e| e.name.as_str()).collect();
    for (index, policy) in config.escalations.iter().enumerate() {
        let path = format!("escalation.{index}");
        if !rules::is_valid_name(&policy.name) {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.name")),
                    format!("invalid escalation policy name `{}`", policy.name),
                    "only a-z, 0-9, `-` and `_` are allowed",
                )
                .help(NAME_RULE),
            );
        }
        if let Some(first) = policies[..index].iter().position(|n| *n == policy.name) {
            let line = at.line(&at.span(&format!("escalation.{first}.name")));
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.name")),
                    format!("duplicate escalation policy name `{}`", policy.name),
                    "this name is already taken",
                )
                .help(format!("the first policy with this name is on line {line}")),
            );
        }
        if policy.steps.is_empty() {
            findings.push(
                Finding::new(
                    at.span(&path),
                    format!("escalation policy `{}` has no steps", policy.name),
                    "nobody would be told",
                )
                .help("add steps = [{ after = \"15m\", notify = [\"pagerduty\"] }]"),
            );
        }
        if policy.repeat > 10 {
            findings.push(
                Finding::new(
                    at.span(&format!("{path}.repeat")),
                    format!("`repeat` is out of range: {}", policy.repeat),
                    "at most 10",
                )
                .help("repeat runs the steps again after the last one; after 10 rounds paging more does not help"),
            );
        }
        let mut previous = std::time::Duration::ZERO;
        for (step_index, step) in policy.steps.iter().enumerate() {
            let step_path = format!("{path}.steps.{step_index}");
            if step.after.get() <= previous && step_index > 0 {
                findings.push(
                    Finding::new(
                        at.span(&format!("{step_path}.after")),
                        format!(
                            "escalation steps must come later and later: {} is not after the previous step's",
                            step.after
                        ),
                        "not increasing",
                    )
                    .help("`after` counts from when the incident opened, so each step's is larger than the one before"),
                );
            }
            previous = step.after.get();
            if step.notify.is_empty() {
                findings.push(
                    Finding::new(
                        at.span(&format!("{step_path}.notify")),
                        "escalation step notifies nobody",
                        "empty",
                    )
                    .help("name at least one [[notifier]], such as notify = [\"pagerduty-secondary\"]"),
                );
            }
            for (position, target) in step.notify.iter().enumerate() {
                reference(
                    &mut findings,
                    at,
                    &names,
                    target,
                    &format!("{step_path}.notify.{position}"),
                );
            }
        }
    }
    findings
}

fn name(
    findings: &mut Vec<Finding>,
    at: &Locator<'_, '_>,
    names: &[&str],
    index: usize,
    path: &str,
) {
    let name = names[index];
    let span = at.span(&format!("{path}.name"));
    if !rules::is_valid_name(name) {
        findings.push(
            Finding::new(
                span.clone(),
                format!("invalid notifier name `{name}`"),
                "only a-z, 0-9, `-` and `_` are allowed",
            )
            .help(format!(
                "{NAME_RULE}; for example `{}`",
                rules::name_like(name)
            )),
        );
    }
    if let Some(first) = names[..index].iter().position(|n| *n == name) {
        let line = at.line(&at.span(&format!("notifier.{first}.name")));
        findings.push(
            Finding::new(
                span,
                format!("duplicate notifier name `{name}`"),
                "this name is already taken",
            )
            .help(format!(
                "the first notifier named `{name}` is on line {line}; notifier names must be unique"
            )),
        );
    }
}

/// A name that must be one of the `[[notifier]]` names (also for other tables'
/// `notify` lists, such as incident rules): "unknown notifier" with a suggestion.
pub(crate) fn reference(
    findings: &mut Vec<Finding>,
    at: &Locator<'_, '_>,
    names: &[&str],
    target: &str,
    path: &str,
) {
    if names.contains(&target) {
        return;
    }
    let help = match closest(target, names) {
        Some(near) => format!("did you mean `{near}`?"),
        None if names.is_empty() => {
            "no [[notifier]] is configured; add one with this name".to_string()
        }
        None => {
            let mut unique = names.to_vec();
            unique.sort_unstable();
            unique.dedup();
            format!("the notifiers are: {}", unique.join(", "))
        }
    };
    findings.push(
        Finding::new(
            at.span(path),
            format!("unknown notifier `{target}`"),
            "no [[notifier]] has this name",
        )
        .help(help),
    );
}
