//! What a config reload would change, worked out without touching anything: the
//! difference between two configs, and the reasons (if any) it cannot be applied
//! while rampart runs. Start-up is the same plan from a config without services.

use std::collections::BTreeSet;

use rampart_config::{Config, ServiceConfig};
use serde::Serialize;
use serde_json::Value;

/// One setting that differs, by its path in the config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Such as `router.request_timeout` (within a service) or `server.listen`.
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// A service present in both configs whose settings differ.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceChange {
    pub name: String,
    pub config: ServiceConfig,
    pub fields: Vec<FieldChange>,
}

impl ServiceChange {
    /// Whether any changed field is `section` or lies under it.
    pub fn touches(&self, section: &str) -> bool {
        self.fields.iter().any(|f| under(&f.field, section))
    }
}

/// Services to add, remove and change, and what changed outside them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub added: Vec<ServiceConfig>,
    pub removed: Vec<String>,
    pub changed: Vec<ServiceChange>,
    /// Changes outside `[[service]]` tables.
    pub global: Vec<FieldChange>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.global.is_empty()
    }
}

/// What turns `old` into `new`. Services are matched by name; the order of the
/// `[[service]]` tables does not matter.
pub fn diff(old: &Config, new: &Config) -> Plan {
    let old_names: BTreeSet<&str> = old.services.iter().map(|s| s.name.as_str()).collect();
    let added = new
        .services
        .iter()
        .filter(|s| !old_names.contains(s.name.as_str()))
        .cloned()
        .collect();
    let removed = old
        .services
        .iter()
        .filter(|s| new.service(&s.name).is_none())
        .map(|s| s.name.clone())
        .collect();
    let changed = new
        .services
        .iter()
        .filter_map(|now| {
            let before = old.service(&now.name)?;
            let mut fields = Vec::new();
            compare("", &to_value(before), &to_value(now), &mut fields);
            (!fields.is_empty()).then(|| ServiceChange {
                name: now.name.clone(),
                config: now.clone(),
                fields,
            })
        })
        .collect();
    let without_services = |c: &Config| {
        to_value(&Config {
            services: Vec::new(),
            ..c.clone()
        })
    };
    let mut global = Vec::new();
    compare(
        "",
        &without_services(old),
        &without_services(new),
        &mut global,
    );
    Plan {
        added,
        removed,
        changed,
        global,
    }
}

/// Why the plan cannot be applied while rampart runs, one reason per problem (each
/// naming the field and what to do instead). Empty when it can be.
///
/// `rollout_in_flight(service)` names the rollout of `service` in flight, if any.
pub fn refusals(plan: &Plan, rollout_in_flight: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut reasons = Vec::new();
    for change in &plan.global {
        let top = change.field.split(['.', '[']).next().unwrap_or_default();
        let why = match top {
            "server" if under(&change.field, "server.tls") => {
                "the API's TLS listener keeps the certificate and key paths it started with (the files at those paths are read again at every reload: replace them in place instead)"
            }
            "server" => {
                "the API listener, the data dir and the restart policy belong to the running process"
            }
            "telemetry" => "the collectors' interval and history are set up when rampart starts",
            "notifier" | "escalation" | "incident_rule" | "incident_action" => {
                "the incident responder and the notification sender are set up when rampart starts"
            }
            _ => "rampart reads it only when it starts",
        };
        reasons.push(format!(
            "`{}` changed ({} → {}): {why}; restart rampart (or upgrade it in place) to apply it, or put the old value back to reload the rest",
            change.field,
            short(&change.from),
            short(&change.to)
        ));
    }
    for name in &plan.removed {
        if let Some(rollout) = rollout_in_flight(name) {
            reasons.push(format!(
                "service `{name}` was removed from the config, but its rollout {rollout} is in flight; let it finish or roll it back (`rampart rollout abort {name}`), then reload again"
            ));
        }
    }
    for change in &plan.changed {
        let name = &change.name;
        for field in &change.fields {
            if let Some(why) = restart_only(change, &field.field) {
                reasons.push(format!(
                    "service `{name}`: `{}` changed ({} → {}): {why}",
                    field.field,
                    short(&field.from),
                    short(&field.to)
                ));
            }
        }
        if let Some(rollout) = rollout_in_flight(name) {
            for section in ROLLOUT_SECTIONS {
                if change.touches(section) {
                    reasons.push(format!(
                        "service `{name}`: `{section}` changed while its rollout {rollout} is in flight; a rollout keeps the strategy, analysis and checks it started with — reload again once it has ended, or leave `{section}` as it is to reload the rest now"
                    ));
                }
            }
        }
    }
    reasons
}

/// What a rollout in flight is steered by; changes to them wait for its end.
const ROLLOUT_SECTIONS: [&str; 4] = ["strategy", "analysis", "check", "notify_rollouts"];

/// Why a changed service field cannot be applied at run time, if it cannot.
fn restart_only(change: &ServiceChange, field: &str) -> Option<String> {
    if under(field, "listen") {
        return Some("a service's listener is not moved at run time; remove the service in one reload and add it back with the new address in the next, or restart rampart".into());
    }
    if under(field, "router.mirror_max_in_flight")
        || under(field, "router.mirror_max_body_bytes")
        || under(field, "router.mirror_non_idempotent")
    {
        return Some("the mirror's limits are set when the service's router starts; restart rampart (or remove the service in one reload and add it back in the next)".into());
    }
    if under(field, "tls") {
        return Some("a listener keeps the certificate and key paths it started with (the files at those paths are read again at every reload: replace them in place instead); to change the paths or turn TLS on or off, remove the service in one reload and add it back in the next, or restart rampart".into());
    }
    if under(field, "strategy.preview_listen") || (field == "strategy.kind" && has_preview(change))
    {
        return Some("the blue-green preview listener is bound when the service is added; remove the service in one reload and add it back in the next, or restart rampart".into());
    }
    if !under(field, "backend") {
        return None;
    }
    // What the backend applies live: the process backend's size, and the static
    // backend's canary addresses (read when a rollout starts).
    let live = ["backend.instances", "backend.canary"];
    if live.iter().any(|l| under(field, l)) && !under_kind_change(change) {
        return None;
    }
    Some(
        if under(field, "backend.stable") || under(field, "backend.stable_version") {
            "the stable set of a running service changes by a rollout (`rampart deploy`), not by a reload; put the old value back, or restart rampart".into()
        } else {
            "the backend runs its instances with the settings it started with; restart rampart to start them with the new ones (a new version with new settings is a rollout: `rampart deploy`)".into()
        },
    )
}

/// Whether the service has (or had) a blue-green preview listener.
fn has_preview(change: &ServiceChange) -> bool {
    change.config.strategy.preview_listen.is_some()
        || change
            .fields
            .iter()
            .any(|f| under(&f.field, "strategy.preview_listen"))
}

/// A change of backend kind shows up as `backend.kind`; everything under it then
/// needs a restart.
fn under_kind_change(change: &ServiceChange) -> bool {
    change.fields.iter().any(|f| f.field == "backend.kind")
}

/// Whether `field` is `section` or lies under it (`router` holds `router.x`).
fn under(field: &str, section: &str) -> bool {
    field == section
        || field
            .strip_prefix(section)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // The model is plain data: it always serialises.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Collects the paths where `a` and `b` differ, as deep as both are tables; lists
/// are compared whole (a step list, an address list), named by their key.
fn compare(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let none = Value::Null;
                compare(
                    &child,
                    a.get(key).unwrap_or(&none),
                    b.get(key).unwrap_or(&none),
                    out,
                );
            }
        }
        _ => out.push(FieldChange {
            field: path.to_string(),
            from: a.clone(),
            to: b.clone(),
        }),
    }
}

/// A value as it reads in a message: short ones whole, long ones cut.
pub fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => "unset".to_string(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(services: &str) -> Config {
        rampart_config::parse(services, "test.toml").expect("valid config")
    }

    fn service(name: &str, port: u16, extra: &str) -> String {
        format!(
            "[[service]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n[service.backend]\nkind = \"process\"\ncommand = \"app --port {{port}}\"\ninstances = 2\n{extra}"
        )
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let c = config(&service("a", 1001, ""));
        assert!(diff(&c, &c).is_empty());
    }

    #[test]
    fn services_are_added_removed_and_changed_by_name() {
        let old = config(&format!(
            "{}{}",
            service("a", 1001, ""),
            service("b", 1002, "")
        ));
        let new = config(&format!(
            "{}{}",
            service("c", 1003, ""),
            service(
                "a",
                1001,
                "[service.router]\nrequest_timeout = \"5s\"\n[service.strategy]\nsteps = [{ weight = 10, hold = \"1m\" }, { weight = 50, hold = \"1m\" }]\n"
            )
        ));
        let plan = diff(&old, &new);
        assert_eq!(
            plan.added
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(plan.removed, ["b"]);
        assert_eq!(plan.changed.len(), 1);
        let change = &plan.changed[0];
        assert_eq!(change.name, "a");
        let fields: Vec<&str> = change.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["router.request_timeout", "strategy.steps"]);
        assert!(change.touches("router") && change.touches("strategy"));
        assert!(!change.touches("backend"));
        assert!(plan.global.is_empty());
        assert!(refusals(&plan, &none).is_empty(), "all of it applies live");
    }

    #[test]
    fn from_no_services_everything_is_added() {
        let c = config(&format!(
            "{}{}",
            service("a", 1001, ""),
            service("b", 1002, "")
        ));
        let empty = Config {
            services: Vec::new(),
            ..c.clone()
        };
        let plan = diff(&empty, &c);
        assert_eq!(plan.added.len(), 2);
        assert!(plan.removed.is_empty() && plan.changed.is_empty() && plan.global.is_empty());
    }

    #[test]
    fn process_settings_of_the_running_process_are_refused_by_name() {
        let old = config(&format!(
            "[server]\nlisten = \"127.0.0.1:7070\"\n{}",
            service("a", 1001, "")
        ));
        let new = config(&format!(
            "[server]\nlisten = \"127.0.0.1:7071\"\ndata_dir = \"elsewhere\"\n{}",
            service("a", 1009, "")
        ));
        let plan = diff(&old, &new);
        let reasons = refusals(&plan, &none);
        assert_eq!(reasons.len(), 3, "{reasons:#?}");
        assert!(reasons[0].contains("`server.data_dir`") && reasons[0].contains("restart"));
        assert!(reasons[1].contains("`server.listen`") && reasons[1].contains("7071"));
        assert!(reasons[2].contains("service `a`: `listen`"));
    }

    #[test]
    fn tls_paths_and_mirror_limits_need_a_restart() {
        let old = config(&service("a", 1001, ""));
        let mut new = old.clone();
        new.services[0].tls = Some(rampart_config::TlsConfig {
            cert: "a.pem".into(),
            key: "a.key".into(),
        });
        new.services[0].router.mirror_max_in_flight += 1;
        let reasons = refusals(&diff(&old, &new), &none);
        assert_eq!(reasons.len(), 2, "{reasons:#?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("`router.mirror_max_in_flight`"))
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("`tls` changed") && r.contains("replace them in place")),
            "{reasons:#?}"
        );
        // An unchanged TLS section reloads the rest.
        let mut same = new.clone();
        same.services[0].router.request_timeout = old.services[0].router.request_timeout;
        assert!(refusals(&diff(&new, &same), &none).is_empty());
    }

    #[test]
    fn the_instance_count_applies_live_but_the_command_needs_a_restart() {
        let old = config(&service("a", 1001, ""));
        let more = config(&service("a", 1001, "").replace("instances = 2", "instances = 4"));
        assert!(refusals(&diff(&old, &more), &none).is_empty());
        let other = config(&service("a", 1001, "").replace("app --port", "app2 --port"));
        let reasons = refusals(&diff(&old, &other), &none);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("`backend.command`"), "{reasons:?}");
    }

    #[test]
    fn a_rollout_in_flight_blocks_removal_and_strategy_changes_but_not_router_settings() {
        let old = config(&format!(
            "{}{}",
            service("a", 1001, ""),
            service("b", 1002, "")
        ));
        let new = config(&service(
            "a",
            1001,
            "[service.router]\nrequest_timeout = \"5s\"\n",
        ));
        let in_flight = |s: &str| (s == "b" || s == "a").then(|| format!("d-{s}"));
        let reasons = refusals(&diff(&old, &new), &in_flight);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("`b`") && reasons[0].contains("d-b"));

        let steps = config(&service(
            "a",
            1001,
            "[service.strategy]\nsteps = [{ weight = 20, hold = \"1m\" }]\n",
        ));
        let reasons = refusals(&diff(&config(&service("a", 1001, "")), &steps), &in_flight);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("`strategy`") && reasons[0].contains("d-a"));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(short(&Value::Null), "unset");
        assert_eq!(short(&Value::from("5s")), "\"5s\"");
        assert!(short(&Value::from("x".repeat(100))).ends_with('…'));
    }
}
