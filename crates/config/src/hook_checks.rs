//! Checks on `[[service.hook]]` and on the gates of strategy steps.

use std::collections::HashSet;

use crate::diagnostic::Finding;
use crate::hooks::HookConfig;
use crate::model::{ServiceConfig, StepPause};
use crate::rules;
use crate::semantic::Checker;

/// Load tests above this would measure the load generator, not the canary.
const MAX_LOAD_RATE: f64 = 10_000.0;

impl Checker<'_, '_> {
    pub(crate) fn step_gates(&mut self, service: &ServiceConfig, path: &str) {
        for (index, step) in service.strategy.steps.iter().enumerate() {
            let at = format!("{path}.strategy.steps.{index}");
            match (step.hold, step.pause) {
                (None, None) => self.push(
                    Finding::new(
                        self.at.span(&at),
                        format!("step {} has no `hold`", index + 1),
                        "how long should it last?",
                    )
                    .help("add hold = \"30s\", or pause = \"until_promoted\" to wait for `rampart resume` or `rampart promote`"),
                ),
                (Some(_), Some(StepPause::UntilPromoted)) => self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.hold")),
                        format!("step {} has both a `hold` and pause = \"until_promoted\"", index + 1),
                        "a step waiting for an operator has no timer",
                    )
                    .help("remove `hold` to wait for the operator, or `pause` to move on after the hold"),
                ),
                _ => {}
            }
            if let Some(name) = &step.approve
                && !rules::is_valid_name(name)
            {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.approve")),
                        format!("invalid approval name `{name}`"),
                        "not a token name or role",
                    )
                    .help(format!(
                        "name the token or role that approves, such as \"{}\"; {}",
                        rules::name_like(name),
                        "names use lowercase letters a-z, digits, `-` and `_`"
                    )),
                );
            }
        }
    }

    pub(crate) fn hooks(&mut self, service: &ServiceConfig, path: &str) {
        let mut names = HashSet::new();
        for (index, hook) in service.hooks.iter().enumerate() {
            let at = format!("{path}.hook.{index}");
            let name = hook.name();
            if !rules::is_valid_name(name) {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.name")),
                        format!("invalid hook name `{name}`"),
                        "names appear in events and payloads",
                    )
                    .help(format!(
                        "use lowercase letters a-z, digits, `-` and `_`, such as \"{}\"",
                        rules::name_like(name)
                    )),
                );
            } else if !names.insert(name) {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.name")),
                        format!("hook `{name}` is defined twice in this service"),
                        "already used",
                    )
                    .help("give each hook its own name"),
                );
            }
            if hook.timeout().get().is_zero() {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.timeout")),
                        "hook `timeout` must be longer than zero",
                        "every attempt would time out",
                    )
                    .help("10s is the default"),
                );
            }
            for header in hook.headers().keys() {
                if !rules::is_header_name(header) {
                    self.push(
                        Finding::new(
                            self.at.span(&format!("{at}.headers.{header}")),
                            format!("invalid header name `{header}`"),
                            "not an HTTP header name",
                        )
                        .help(
                            "header names use letters, digits and `-`, such as \"Authorization\"",
                        ),
                    );
                }
            }
            if let Some(webhook) = hook.webhook()
                && let Some(problem) = rules::http_url_problem(&webhook.url)
            {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.url")),
                        format!("invalid hook URL `{}`", webhook.url),
                        problem,
                    )
                    .help("write an absolute URL, such as \"https://hooks.example.com/rollout\""),
                );
            }
            if hook.confirm_interval().is_some_and(|i| i.get().is_zero()) {
                self.push(
                    Finding::new(
                        self.at.span(&format!("{at}.interval")),
                        "confirm hook `interval` must be longer than zero",
                        "it would be asked without pause",
                    )
                    .help("10s is the default"),
                );
            }
            if let HookConfig::LoadTest(load) = hook {
                if !(load.rate > 0.0 && load.rate <= MAX_LOAD_RATE) {
                    self.push(
                        Finding::new(
                            self.at.span(&format!("{at}.rate")),
                            format!("load test rate {} is out of range", load.rate),
                            "requests a second, above 0 and at most 10000",
                        )
                        .help("10 requests a second give the judge evidence within a minute at a 5% step"),
                    );
                }
                if !load.path.starts_with('/') {
                    self.push(
                        Finding::new(
                            self.at.span(&format!("{at}.path")),
                            format!("load test path `{}` does not start with /", load.path),
                            "not a request path",
                        )
                        .help(
                            "write the path as requests carry it, such as \"/\" or \"/api/health\"",
                        ),
                    );
                }
            }
        }
    }
}
