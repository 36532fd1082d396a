//! One metric's replica proposal, as the HPA's replica calculator computes it
//! (`pkg/controller/podautoscaler/replica_calculator.go`).

use serde::{Deserialize, Serialize};

use super::spec::{MetricKind, Target};

/// One instance as the autoscaler sees it. Instances being stopped or crashed are
/// left out by the caller (the HPA ignores deleted and failed pods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSample {
    pub id: String,
    /// Answering its ready check. A CPU reading of an instance still starting says
    /// nothing about steady load (the HPA's CPU initialisation rule).
    pub ready: bool,
    /// Percent of one core, when measured.
    pub cpu_percent: Option<f64>,
    /// Resident memory in MiB, when measured.
    pub memory_mib: Option<f64>,
}

/// What one version looks like now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Instances the version runs (not being stopped): the HPA's current replicas.
    pub current: u32,
    pub instances: Vec<InstanceSample>,
    /// The version's total request rate, if measured.
    pub requests_per_second: Option<f64>,
    /// The version's p95 latency in ms, if it served requests.
    pub p95_ms: Option<f64>,
}

impl Observation {
    pub fn ready(&self) -> u32 {
        self.instances.iter().filter(|i| i.ready).count() as u32
    }
}

/// One metric's numbers in a decision: enough to redo the arithmetic by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricOutcome {
    pub metric: MetricKind,
    pub target: f64,
    /// Mean per instance (resource metrics) or the version's value.
    pub observed: Option<f64>,
    /// observed / target (per instance for `rps_per_instance`).
    pub ratio: Option<f64>,
    /// Ratio after the HPA's adjustment for missing and not-ready instances.
    pub adjusted_ratio: Option<f64>,
    /// Instances this metric asks for; `None` when it could not be computed.
    pub proposal: Option<u32>,
    pub counted: u32,
    pub not_ready: u32,
    pub missing: u32,
    /// Why this proposal, in words.
    pub note: String,
}

/// Avoids `ceil(6.000000000001) == 7` from binary fractions (the HPA works in whole
/// percent, so it never sees them).
pub(crate) fn ceil(x: f64) -> u32 {
    let rounded = x.round();
    let x = if (x - rounded).abs() < 1e-9 {
        rounded
    } else {
        x
    };
    x.ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

pub fn evaluate(target: &Target, obs: &Observation, tolerance: f64) -> MetricOutcome {
    match target.metric {
        MetricKind::Cpu => per_instance(target, obs, tolerance, |i| i.cpu_percent, true),
        MetricKind::MemoryMib => per_instance(target, obs, tolerance, |i| i.memory_mib, false),
        MetricKind::RpsPerInstance => per_instance_total(target, obs, tolerance),
        MetricKind::P95Ms => object_value(target, obs, tolerance),
    }
}

fn outcome(target: &Target) -> MetricOutcome {
    MetricOutcome {
        metric: target.metric,
        target: target.value,
        observed: None,
        ratio: None,
        adjusted_ratio: None,
        proposal: None,
        counted: 0,
        not_ready: 0,
        missing: 0,
        note: String::new(),
    }
}

/// A resource metric averaged over instances (`GetResourceReplicas`, with a plain
/// target: missing instances count as the target on scale-down, 0 on scale-up).
fn per_instance(
    target: &Target,
    obs: &Observation,
    tolerance: f64,
    read: impl Fn(&InstanceSample) -> Option<f64>,
    readiness_matters: bool,
) -> MetricOutcome {
    let mut out = outcome(target);
    let current = obs.current;
    let mut values = Vec::new();
    for instance in &obs.instances {
        match read(instance) {
            None => out.missing += 1,
            Some(_) if readiness_matters && !instance.ready => out.not_ready += 1,
            Some(v) => values.push(v),
        }
    }
    out.counted = values.len() as u32;
    if values.is_empty() {
        out.note = format!(
            "no instance reported {} ({} not ready, {} without a reading)",
            target.metric.as_str(),
            out.not_ready,
            out.missing
        );
        return out;
    }
    let usage = mean(&values);
    let ratio = usage / target.value;
    out.observed = Some(usage);
    out.ratio = Some(ratio);
    let scale_up_with_not_ready = out.not_ready > 0 && ratio > 1.0;
    if !scale_up_with_not_ready && out.missing == 0 {
        out.adjusted_ratio = Some(ratio);
        if (1.0 - ratio).abs() <= tolerance {
            out.proposal = Some(current);
            out.note = format!(
                "ratio {ratio:.3} is within the tolerance of {tolerance}: stay at {current}"
            );
        } else {
            let proposal = ceil(ratio * values.len() as f64);
            out.proposal = Some(proposal);
            out.note = format!(
                "ceil({} ready × {usage:.1} / {}) = {proposal}",
                values.len(),
                target.value
            );
        }
        return out;
    }
    let mut adjusted = values.clone();
    if out.missing > 0 {
        // Assume the worst for the direction: missing instances are at the target when
        // scaling down, idle when scaling up.
        let assumed = if ratio < 1.0 {
            Some(target.value)
        } else if ratio > 1.0 {
            Some(0.0)
        } else {
            None
        };
        if let Some(assumed) = assumed {
            adjusted.extend(std::iter::repeat_n(assumed, out.missing as usize));
        }
    }
    if scale_up_with_not_ready {
        adjusted.extend(std::iter::repeat_n(0.0, out.not_ready as usize));
    }
    let new_ratio = mean(&adjusted) / target.value;
    out.adjusted_ratio = Some(new_ratio);
    if (1.0 - new_ratio).abs() <= tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        out.proposal = Some(current);
        out.note = format!(
            "ratio {ratio:.3}, {new_ratio:.3} counting {} missing and {} not-ready instances conservatively: \
             within tolerance or reversed, stay at {current}",
            out.missing, out.not_ready
        );
        return out;
    }
    let proposal = ceil(new_ratio * adjusted.len() as f64);
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        out.proposal = Some(current);
        out.note = format!(
            "ceil({} × {new_ratio:.3}) = {proposal} moves against the load: stay at {current}",
            adjusted.len()
        );
        return out;
    }
    out.proposal = Some(proposal);
    out.note = format!(
        "ceil({} × {new_ratio:.3}) = {proposal} ({} missing counted as {}, {} not ready as 0)",
        adjusted.len(),
        out.missing,
        if ratio < 1.0 { "the target" } else { "0" },
        if scale_up_with_not_ready {
            out.not_ready
        } else {
            0
        }
    );
    out
}

/// An average-value target over a total (`GetExternalPerPodMetricReplicas`):
/// ratio = total / (target × current); outside tolerance, ceil(total / target).
fn per_instance_total(target: &Target, obs: &Observation, tolerance: f64) -> MetricOutcome {
    let mut out = outcome(target);
    out.counted = obs.current;
    let Some(total) = obs.requests_per_second else {
        out.note = "no request rate measured".into();
        return out;
    };
    let current = obs.current;
    let per_instance = if current > 0 {
        total / f64::from(current)
    } else {
        total
    };
    let ratio = per_instance / target.value;
    out.observed = Some(per_instance);
    out.ratio = Some(ratio);
    out.adjusted_ratio = Some(ratio);
    if current > 0 && (1.0 - ratio).abs() <= tolerance {
        out.proposal = Some(current);
        out.note =
            format!("ratio {ratio:.3} is within the tolerance of {tolerance}: stay at {current}");
    } else {
        let proposal = ceil(total / target.value);
        out.proposal = Some(proposal);
        out.note = format!(
            "ceil({total:.1} req/s / {} per instance) = {proposal}",
            target.value
        );
    }
    out
}

/// A value target for the whole version (`GetObjectMetricReplicas`):
/// ceil(ratio × ready instances).
fn object_value(target: &Target, obs: &Observation, tolerance: f64) -> MetricOutcome {
    let mut out = outcome(target);
    let Some(value) = obs.p95_ms else {
        out.note = "no requests, so no latency measured".into();
        return out;
    };
    let current = obs.current;
    let ready = obs.ready();
    let ratio = value / target.value;
    out.observed = Some(value);
    out.ratio = Some(ratio);
    out.adjusted_ratio = Some(ratio);
    out.counted = ready;
    if current == 0 {
        let proposal = ceil(ratio);
        out.proposal = Some(proposal);
        out.note = format!("no instances: ceil({ratio:.3}) = {proposal}");
    } else if (1.0 - ratio).abs() <= tolerance {
        out.proposal = Some(current);
        out.note =
            format!("ratio {ratio:.3} is within the tolerance of {tolerance}: stay at {current}");
    } else {
        let proposal = ceil(ratio * f64::from(ready));
        out.proposal = Some(proposal);
        out.note = format!(
            "ceil({ready} ready × {value:.1} / {}) = {proposal}",
            target.value
        );
    }
    out
}
