//! The responder loop: every tick, read the numbers, step each rule's tracker in
//! each scope, and turn changes into incidents, actions, escalations and resolves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_config::{Config, IncidentActionConfig, IncidentRuleConfig};
use rampart_core::Timestamp;
use rampart_core::escalation::{Escalation, EscalationPolicy, EscalationState, next_escalation};
use rampart_core::incident::{self, Change, Condition, Observation, Tracker};
use rampart_store::{Incident, IncidentQuery, NewIncident, Opened};
use serde_json::json;
use tokio::sync::mpsc;

use super::TICK;
use super::actions::{self, Context, Guards, LoadHistory, UndoBook};
use super::handle::{Command, Incidents, Inner, publish};
use super::readings::{
    CounterRate, HostNumbers, ScopeReadings, ServiceNumbers, Sources, service_numbers,
};
use super::record::{self, Transition};
use crate::Engine;
use crate::shared::SYSTEM_ACTOR;

/// An unacknowledged incident's escalation: its rule, when it opened, and how
/// many escalation steps it has had (the store's `escalations`).
#[derive(Debug, Clone, Copy)]
struct Watch {
    rule: usize,
    opened: Timestamp,
    sent: u32,
}

/// One rule, parsed, with a tracker per scope (`None`: host-wide).
struct RuleRuntime {
    config: IncidentRuleConfig,
    condition: Condition,
    /// Its `[[escalation]]` policy, if it names one.
    policy: Option<EscalationPolicy>,
    trackers: HashMap<Option<String>, Tracker>,
}

/// State shared by the loop and the action tasks it spawns.
struct Shared {
    handle: Incidents,
    actions: HashMap<String, IncidentActionConfig>,
    guards: Guards,
    load: LoadHistory,
    undo: UndoBook,
    /// The services each rule acts on when its incident is host-wide (`*` for all),
    /// looked up when it fires, so services a config reload added are included.
    rule_services: HashMap<String, String>,
    rule_dry_run: HashMap<String, bool>,
}

struct Responder {
    engine: Engine,
    sources: Arc<dyn Sources>,
    rules: Vec<RuleRuntime>,
    shared: Arc<Shared>,
    failed_auth: CounterRate,
    rate_limited: CounterRate,
    /// Open incidents the loop watches for escalation.
    escalation: HashMap<String, Watch>,
}

pub(super) fn start(engine: &Engine, config: &Config, sources: Arc<dyn Sources>) -> Incidents {
    let (commands, receiver) = mpsc::unbounded_channel();
    let mut rules = Vec::new();
    let mut notifiers = HashMap::new();
    let mut rule_actions = HashMap::new();
    let mut rule_services = HashMap::new();
    let mut rule_dry_run = HashMap::new();
    for rule in config.incident_rules() {
        // The config check parsed every condition already; a failure here is a bug.
        let condition = match incident::parse(&rule.when) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(rule = rule.name, error = %e, "incident rule skipped: its condition does not parse");
                continue;
            }
        };
        notifiers.insert(rule.name.clone(), rule.notify.clone());
        rule_actions.insert(rule.name.clone(), rule.actions.clone());
        rule_services.insert(rule.name.clone(), rule.service.clone());
        rule_dry_run.insert(rule.name.clone(), rule.dry_run);
        let policy = rule
            .escalation
            .as_deref()
            .and_then(|name| config.escalation(name))
            .map(|e| e.policy());
        rules.push(RuleRuntime {
            policy,
            config: rule,
            condition,
            trackers: HashMap::new(),
        });
    }
    let mut actions = HashMap::new();
    for name in rules.iter().flat_map(|r| r.config.actions.iter()) {
        if let Some(action) = config.incident_action(name) {
            actions.insert(name.clone(), action);
        }
    }
    let handle = Incidents {
        inner: Arc::new(Inner {
            engine: engine.clone(),
            notifiers,
            actions: rule_actions,
            commands,
        }),
    };
    let responder = Responder {
        engine: engine.clone(),
        sources,
        rules,
        shared: Arc::new(Shared {
            handle: handle.clone(),
            actions,
            guards: Guards::default(),
            load: LoadHistory::default(),
            undo: Arc::new(Mutex::new(HashMap::new())),
            rule_services,
            rule_dry_run,
        }),
        failed_auth: CounterRate::default(),
        rate_limited: CounterRate::default(),
        escalation: HashMap::new(),
    };
    tokio::spawn(responder.run(receiver));
    handle
}

impl Responder {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %e, "incident responder: cannot read open incidents");
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick().await,
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => return,
                },
            }
        }
    }

    /// After a restart: rules with an open incident are firing (they resolve after
    /// a full clear period), freezes and lock-downs they held are held again.
    async fn recover(&mut self) -> Result<(), crate::EngineError> {
        let open = self
            .shared
            .handle
            .list(IncidentQuery {
                unresolved: true,
                limit: 10_000,
                ..IncidentQuery::default()
            })
            .await?;
        for incident in open {
            let Some(index) = self
                .rules
                .iter()
                .position(|r| Some(&r.config.name) == incident.rule.as_ref())
            else {
                continue;
            };
            let rule = &mut self.rules[index];
            let tracker = rule
                .trackers
                .entry(incident.service.clone())
                .or_insert_with(|| Tracker::new(&rule.condition));
            tracker.resume_firing();
            if incident.status == "open" {
                self.escalation.insert(
                    incident.id.clone(),
                    Watch {
                        rule: index,
                        opened: timestamp(&incident),
                        sent: incident.escalations,
                    },
                );
            }
            let detail = self.shared.handle.get(&incident.id).await?;
            for event in detail
                .timeline
                .iter()
                .filter(|e| e.kind == "action" && e.details["result"] == "done")
            {
                let services: Vec<String> =
                    serde_json::from_value(event.details["services"].clone()).unwrap_or_default();
                match event.details["kind"].as_str() {
                    Some("freeze_deploys") => {
                        services
                            .iter()
                            .for_each(|s| self.engine.safeguards().freeze(s, &incident.id));
                        self.shared
                            .remember_undo(&incident.id, vec![actions::Undo::Unfreeze]);
                    }
                    Some("lock_down") => {
                        self.engine.safeguards().lock_down(&incident.id);
                        self.shared
                            .remember_undo(&incident.id, vec![actions::Undo::LiftLockdown]);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn tick(&mut self) {
        let now = self.engine.shared().clock.now();
        let host: HostNumbers = self.sources.host();
        let failed_auth = self
            .failed_auth
            .observe(now, self.sources.failed_auth_total());
        let rate_limited = self
            .rate_limited
            .observe(now, self.sources.rate_limited_total());
        let services: Vec<ServiceNumbers> =
            service_numbers(&self.engine, self.sources.as_ref(), now);
        for s in &services {
            self.shared
                .load
                .record(&s.service, now, s.in_flight as u64, s.all.error_rate);
        }
        let mut changes = Vec::new();
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let scopes: Vec<Option<&ServiceNumbers>> = if rule.condition.is_per_service() {
                services
                    .iter()
                    .filter(|s| rule.config.service == "*" || s.service == rule.config.service)
                    .map(Some)
                    .collect()
            } else {
                vec![None]
            };
            for service in scopes {
                let readings = ScopeReadings {
                    service,
                    host: &host,
                    failed_auth,
                    rate_limited,
                };
                let scope = service.map(|s| s.service.clone());
                let tracker = rule
                    .trackers
                    .entry(scope.clone())
                    .or_insert_with(|| Tracker::new(&rule.condition));
                if let Some(change) = tracker.step(
                    &rule.condition,
                    &readings,
                    now,
                    rule.config.resolve_after.get(),
                ) {
                    changes.push((index, scope, change));
                }
            }
        }
        for (index, scope, change) in changes {
            if let Err(e) = self.apply(index, scope, change, now).await {
                tracing::error!(error = %e, rule = self.rules[index].config.name, "incident change not recorded");
            }
        }
        self.escalate_due(now).await;
    }

    async fn apply(
        &mut self,
        index: usize,
        scope: Option<String>,
        change: Change,
        now: Timestamp,
    ) -> Result<(), crate::EngineError> {
        let rule = &self.rules[index].config;
        match change {
            Change::Fired(observations) | Change::Repeated(observations) => {
                let new = new_incident(rule, scope.clone(), &observations);
                let notifiers = rule.notify.clone();
                let store = &self.engine.shared().store;
                let opened = record::open(store, new, SYSTEM_ACTOR.to_string(), notifiers).await?;
                match opened {
                    Opened::New(incident) => {
                        publish(&self.engine, &incident, "opened", None);
                        self.escalation.insert(
                            incident.id.clone(),
                            Watch {
                                rule: index,
                                opened: now,
                                sent: 0,
                            },
                        );
                        let actions = rule.actions.clone();
                        spawn_actions(self.engine.clone(), self.shared.clone(), incident, actions);
                    }
                    Opened::Repeat(incident) => publish(&self.engine, &incident, "repeated", None),
                }
            }
            Change::Resolved => {
                let (name, service) = (rule.name.clone(), scope.clone());
                let store = &self.engine.shared().store;
                let open = store
                    .read(move |tx| tx.open_incident_for(&name, service.as_deref()))
                    .await?;
                if let Some(open) = open {
                    let reason =
                        format!("condition `{}` clear for {}", rule.when, rule.resolve_after);
                    let incident = record::transition(
                        store,
                        &open.id,
                        Transition::Resolve,
                        SYSTEM_ACTOR,
                        reason,
                        rule.notify.clone(),
                    )
                    .await?;
                    publish(&self.engine, &incident, "resolved", None);
                    self.escalation.remove(&incident.id);
                    self.undo_actions(&incident).await;
                }
            }
        }
        Ok(())
    }

    /// Escalates unacknowledged incidents: the steps of their rule's escalation
    /// policy as they fall due, or once after `escalate_after`.
    async fn escalate_due(&mut self, now: Timestamp) {
        let ids: Vec<String> = self.escalation.keys().cloned().collect();
        for id in ids {
            let Some(watch) = self.escalation.get(&id).copied() else {
                continue;
            };
            let rule = &self.rules[watch.rule];
            let (notifiers, reason, last) = match &rule.policy {
                Some(policy) => {
                    let state = EscalationState {
                        opened_at: watch.opened,
                        acknowledged_at: None,
                        resolved_at: None,
                        sent: watch.sent,
                    };
                    match next_escalation(policy, &state, now) {
                        Escalation::Due(step) => (
                            step.notify.to_vec(),
                            format!(
                                "not acknowledged: escalation policy `{}`, step {} of round {}",
                                policy.name,
                                step.step + 1,
                                step.round + 1
                            ),
                            step.sequence + 1 >= policy.total_steps(),
                        ),
                        Escalation::WaitUntil(_) => continue,
                        Escalation::Finished => {
                            self.escalation.remove(&id);
                            continue;
                        }
                    }
                }
                None => match rule.config.escalate_after {
                    Some(after) if watch.sent == 0 && now.since(watch.opened) >= after.get() => (
                        rule.config.notify.clone(),
                        format!("not acknowledged within {after}"),
                        true,
                    ),
                    Some(_) if watch.sent == 0 => continue,
                    _ => {
                        self.escalation.remove(&id);
                        continue;
                    }
                },
            };
            // Only an incident nobody has acknowledged escalates on its own.
            let store = &self.engine.shared().store;
            let key = id.clone();
            match store.read(move |tx| tx.incident(&key)).await {
                Ok(Some(incident)) if incident.status == "open" => {}
                Ok(_) => {
                    self.escalation.remove(&id);
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, incident = id, "cannot read an incident to escalate");
                    continue;
                }
            }
            match record::transition(
                store,
                &id,
                Transition::Escalate,
                SYSTEM_ACTOR,
                reason,
                notifiers,
            )
            .await
            {
                Ok(incident) => {
                    publish(&self.engine, &incident, "escalated", None);
                    if last {
                        self.escalation.remove(&id);
                    } else if let Some(watch) = self.escalation.get_mut(&id) {
                        watch.sent += 1;
                    }
                }
                Err(crate::EngineError::Conflict(_)) => {
                    self.escalation.remove(&id);
                }
                Err(e) => tracing::error!(error = %e, incident = id, "cannot escalate"),
            }
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Resolved(incident) => {
                self.escalation.remove(&incident.id);
                if let Some(rule) = self
                    .rules
                    .iter_mut()
                    .find(|r| Some(&r.config.name) == incident.rule.as_ref())
                {
                    // Resolved by hand: if the condition still holds, a new incident opens.
                    if let Some(tracker) = rule.trackers.get_mut(&incident.service) {
                        tracker.reset();
                    }
                }
                self.undo_actions(&incident).await;
            }
            Command::ExternalOpened(incident, actions) => {
                spawn_actions(self.engine.clone(), self.shared.clone(), incident, actions);
            }
            Command::Acknowledged(id) => {
                self.escalation.remove(&id);
            }
        }
    }

    async fn undo_actions(&self, incident: &Incident) {
        let undo = self
            .shared
            .undo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&incident.id);
        for step in undo.unwrap_or_default() {
            let details = actions::undo(&self.engine, &incident.id, step).await;
            let store = &self.engine.shared().store;
            if let Err(e) = record::action(
                store,
                &incident.id,
                SYSTEM_ACTOR,
                json!({ "result": "undone", "effect": details }),
            )
            .await
            {
                tracing::error!(error = %e, "cannot record an undo");
            }
            publish(&self.engine, incident, "action", Some(details));
        }
    }
}

impl Shared {
    fn remember_undo(&self, id: &str, undo: Vec<actions::Undo>) {
        self.undo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_string())
            .or_default()
            .extend(undo);
    }
}

fn timestamp(incident: &Incident) -> Timestamp {
    Timestamp(u64::try_from(incident.opened_at.timestamp_millis()).unwrap_or(0))
}

fn new_incident(
    rule: &IncidentRuleConfig,
    service: Option<String>,
    observations: &[Observation],
) -> NewIncident {
    let seen: Vec<String> = observations
        .iter()
        .filter(|o| o.holds)
        .map(Observation::sentence)
        .collect();
    let reason = if seen.is_empty() {
        rule.when.clone()
    } else {
        seen.join("; ")
    };
    let title = match &service {
        Some(s) => format!("{} on {s}: {reason}", rule.name),
        None => format!("{}: {reason}", rule.name),
    };
    NewIncident {
        rule: rule.name.clone(),
        service,
        severity: rule.severity.as_str().to_string(),
        title,
        details: json!({
            "reason": reason,
            "condition": rule.when,
            "observations": observations,
        }),
    }
}

/// Runs the rule's actions for a new incident, in order, off the loop.
fn spawn_actions(engine: Engine, shared: Arc<Shared>, incident: Incident, names: Vec<String>) {
    tokio::spawn(async move {
        let rule = incident.rule.clone().unwrap_or_default();
        let services = match &incident.service {
            Some(s) => vec![s.clone()],
            None => match shared.rule_services.get(&rule) {
                Some(pattern) => engine
                    .service_names()
                    .into_iter()
                    .filter(|s| pattern == "*" || s == pattern)
                    .collect(),
                None => Vec::new(),
            },
        };
        let dry_run = shared.rule_dry_run.get(&rule).copied().unwrap_or(false);
        let mut failed = Vec::new();
        for name in names {
            let Some(action) = shared.actions.get(&name).cloned() else {
                continue;
            };
            let cx = Context {
                engine: &engine,
                incident: &incident,
                services: services.clone(),
                action: &action,
                load: &shared.load,
            };
            let now = engine.shared().clock.now();
            let outcome = actions::execute(&cx, &shared.guards, now, dry_run).await;
            shared.remember_undo(&incident.id, outcome.undo);
            let store = &engine.shared().store;
            if let Err(e) =
                record::action(store, &incident.id, SYSTEM_ACTOR, outcome.details.clone()).await
            {
                tracing::error!(error = %e, "cannot record an incident action");
            }
            publish(&engine, &incident, "action", Some(outcome.details));
            if outcome.failed {
                failed.push(name);
            }
        }
        if !failed.is_empty() {
            let reason = format!("action(s) {} failed after their retries", failed.join(", "));
            let notifiers = shared.handle.notifiers_of(&incident);
            match record::transition(
                &engine.shared().store,
                &incident.id,
                Transition::Escalate,
                SYSTEM_ACTOR,
                reason,
                notifiers,
            )
            .await
            {
                Ok(updated) => publish(&engine, &updated, "escalated", None),
                Err(e) => {
                    tracing::warn!(error = %e, incident = incident.id, "cannot escalate after a failed action")
                }
            }
        }
    });
}
