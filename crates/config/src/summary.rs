//! A short description of a valid config, printed by `rampart check-config`.

use std::fmt::Write;

use crate::model::{BackendConfig, Config, RestartPolicy, ServiceConfig};

impl Config {
    /// What this config sets up: the server, then each service with its listen
    /// address, backend, rollout steps and checks.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let on_restart = match self.server.on_restart {
            RestartPolicy::Rollback => "roll back",
            RestartPolicy::Resume => "resume",
        };
        let _ = writeln!(
            out,
            "server: listen {}, data in {}, rollouts in flight after a restart: {on_restart}",
            self.server.listen,
            self.server.data_dir.display()
        );
        match self.services.len() {
            0 => out.push_str("services: none"),
            1 => out.push_str("services: 1"),
            n => {
                let _ = write!(out, "services: {n}");
            }
        }
        for service in &self.services {
            out.push('\n');
            service_summary(&mut out, service);
        }
        notification_summary(&mut out, self);
        out
    }
}

fn service_summary(out: &mut String, service: &ServiceConfig) {
    let _ = writeln!(out, "  {}: listen {}", service.name, service.listen);
    match &service.backend {
        BackendConfig::Process(process) => {
            let _ = writeln!(
                out,
                "    backend: process, {} instance{} of `{}`, ready at {}, first version {}",
                process.instances,
                if process.instances == 1 { "" } else { "s" },
                process.command,
                process.ready_path,
                process.initial_version
            );
        }
        BackendConfig::Static(upstreams) => {
            let list = |addrs: &[crate::UpstreamAddress]| {
                if addrs.is_empty() {
                    "none".to_string()
                } else {
                    addrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let _ = writeln!(
                out,
                "    backend: static, stable {} ({}), canary {}",
                list(&upstreams.stable),
                upstreams.stable_version,
                list(&upstreams.canary)
            );
        }
    }
    let steps = service
        .strategy
        .steps
        .iter()
        .map(|step| step.describe())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(out, "    steps: {steps}, then promote to 100%");
    if !service.checks.is_empty() {
        let checks = service
            .checks
            .iter()
            .map(|check| {
                let severity = if check.critical {
                    "critical"
                } else {
                    "warning"
                };
                format!("{} ({}, {severity})", check.name, check.kind.name())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(out, "\n    checks: {checks}");
    }
    if !service.notify_rollouts.is_empty() {
        let _ = write!(
            out,
            "\n    rollouts notified to: {}",
            service.notify_rollouts.join(", ")
        );
    }
}

/// Notifiers (never their URLs or keys: a Slack URL is a secret) and escalation.
fn notification_summary(out: &mut String, config: &Config) {
    if !config.notifiers.is_empty() {
        let notifiers = config
            .notifiers
            .iter()
            .map(|n| format!("{} ({}, {}/s)", n.name(), n.kind_name(), n.rate_limit()))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(out, "\nnotifiers: {notifiers}");
    }
    for policy in &config.escalations {
        let steps = policy
            .steps
            .iter()
            .map(|step| format!("after {}: {}", step.after, step.notify.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(out, "\nescalation {}: {steps}", policy.name);
        if policy.repeat > 0 {
            let _ = write!(out, "; repeated {} more time(s)", policy.repeat);
        }
    }
}
