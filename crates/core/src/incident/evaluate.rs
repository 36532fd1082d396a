//! Evaluating a condition over time: each comparison's `for`, the whole condition's
//! `for`, and hysteresis (an incident resolves only after the condition has been
//! clear for `resolve_after`, so a value hovering at the threshold does not open and
//! close incidents every second).

use std::time::Duration;

use serde::Serialize;

use super::condition::{Comparison, Condition, Expr};
use super::metric::{MetricRef, format_value};
use crate::clock::Timestamp;

/// Where the evaluator reads current values. `None`: not measured (no traffic, no
/// such host metric yet); a comparison on it does not hold.
pub trait Readings {
    fn read(&self, metric: MetricRef) -> Option<f64>;
}

/// What one comparison saw at the last evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub metric: String,
    pub value: Option<f64>,
    /// The value as a person reads it ("9.8%").
    pub shown: String,
    /// "> 5% for 30s"
    pub expected: String,
    pub holds: bool,
}

impl Observation {
    pub fn sentence(&self) -> String {
        format!("{} {} ({})", self.metric, self.shown, self.expected)
    }
}

/// What changed at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The condition holds (for its durations): open an incident.
    Fired(Vec<Observation>),
    /// It held again after a break shorter than `resolve_after`: a repeat.
    Repeated(Vec<Observation>),
    /// Clear for `resolve_after`: resolve.
    Resolved,
}

/// The evaluation state of one rule in one scope (a service, or the host).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Since when each comparison has held without a break.
    since: Vec<Option<Timestamp>>,
    whole_since: Option<Timestamp>,
    firing: bool,
    clear_since: Option<Timestamp>,
    /// Held at the previous evaluation (to count a repeat once per return).
    held: bool,
    observations: Vec<Observation>,
}

impl Tracker {
    pub fn new(condition: &Condition) -> Self {
        Self {
            since: vec![None; condition.comparisons],
            ..Self::default()
        }
    }

    pub fn is_firing(&self) -> bool {
        self.firing
    }

    /// What each comparison saw at the last evaluation.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Sets the state after a restart (an incident of this rule and scope is open):
    /// firing, and resolving only after a full clear period from now.
    pub fn resume_firing(&mut self) {
        self.firing = true;
        self.held = true;
    }

    /// Forgets that the rule fires (an operator resolved its incident by hand): it
    /// opens a new incident when the condition holds again.
    pub fn reset(&mut self) {
        self.firing = false;
        self.clear_since = None;
        self.held = false;
        self.whole_since = None;
        self.since.iter_mut().for_each(|s| *s = None);
    }

    /// Evaluates at `now`.
    pub fn step(
        &mut self,
        condition: &Condition,
        readings: &dyn Readings,
        now: Timestamp,
        resolve_after: Duration,
    ) -> Option<Change> {
        if self.since.len() != condition.comparisons {
            self.since = vec![None; condition.comparisons];
        }
        self.observations.clear();
        let raw = self.eval(&condition.expr, readings, now);
        let holds = if raw {
            let since = *self.whole_since.get_or_insert(now);
            now.since(since) >= condition.hold
        } else {
            self.whole_since = None;
            false
        };
        let was_held = std::mem::replace(&mut self.held, holds);
        if holds {
            self.clear_since = None;
            if !self.firing {
                self.firing = true;
                return Some(Change::Fired(self.observations.clone()));
            }
            return (!was_held).then(|| Change::Repeated(self.observations.clone()));
        }
        if self.firing {
            let clear = *self.clear_since.get_or_insert(now);
            if now.since(clear) >= resolve_after {
                self.firing = false;
                self.clear_since = None;
                return Some(Change::Resolved);
            }
        }
        None
    }

    /// Every comparison is evaluated (no short-circuit), so each one's `for` clock
    /// runs whatever its neighbours say.
    fn eval(&mut self, expr: &Expr, readings: &dyn Readings, now: Timestamp) -> bool {
        match expr {
            Expr::Compare(c) => self.compare(c, readings, now),
            Expr::And(items) => {
                let held: Vec<bool> = items.iter().map(|e| self.eval(e, readings, now)).collect();
                held.iter().all(|h| *h)
            }
            Expr::Or(items) => {
                let held: Vec<bool> = items.iter().map(|e| self.eval(e, readings, now)).collect();
                held.iter().any(|h| *h)
            }
        }
    }

    fn compare(&mut self, c: &Comparison, readings: &dyn Readings, now: Timestamp) -> bool {
        let value = readings.read(c.metric).filter(|v| v.is_finite());
        let now_true = value.is_some_and(|v| c.op.holds(v, c.threshold));
        let slot = &mut self.since[c.index];
        if now_true {
            slot.get_or_insert(now);
        } else {
            *slot = None;
        }
        let holds = slot.is_some_and(|since| now.since(since) >= c.hold);
        let mut expected = format!("{} {}", c.op.as_str(), c.written);
        if !c.hold.is_zero() {
            expected.push_str(&format!(" for {}", format_duration(c.hold)));
        }
        self.observations.push(Observation {
            metric: c.metric.to_string(),
            value,
            shown: value.map_or_else(
                || "not measured".into(),
                |v| format_value(c.metric.dimension(), v),
            ),
            expected,
            holds,
        });
        holds
    }
}

/// "30s", "5m", "1h30m", "500ms".
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}
