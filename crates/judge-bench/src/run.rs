//! Runs a scenario many times on both cores and records, per run and per judge, the
//! second at which the judge rolled the canary back (if it did) — or, in the rollout
//! mode, how the whole default rollout ended.

use rampart_core::Timestamp;
use rampart_core::judge::{
    Judge, Outcome, SequentialJudge, SequentialSettings, ThresholdJudge, ThresholdSettings,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::scenario::{Scenario, Stream};

/// The judges' settings as the command line gives them (replay uses them directly).
#[derive(Debug, Clone)]
pub struct JudgeSetup {
    pub sequential: SequentialSettings,
    pub threshold: ThresholdSettings,
    /// Seconds between threshold evaluations (Flagger's `interval`).
    pub threshold_interval_secs: u64,
}

impl JudgeSetup {
    /// The judges of the rollback table: rampart's default, Flagger's defaults
    /// (rollback on the first failed check) and Flagger's examples (`threshold: 5`).
    pub fn contestants(&self) -> Vec<Contestant> {
        vec![
            Contestant::Sequential {
                label: "sequential".into(),
                settings: self.sequential.clone(),
            },
            self.flagger(1, "Flagger default"),
            self.flagger(5, "Flagger threshold 5"),
        ]
    }

    /// The judges of the rollout table: the above plus `require_confidence`.
    pub fn rollout_contestants(&self) -> Vec<Contestant> {
        let mut all = self.contestants();
        all.insert(
            1,
            Contestant::Sequential {
                label: "sequential, require_confidence".into(),
                settings: SequentialSettings {
                    require_confidence: true,
                    ..self.sequential.clone()
                },
            },
        );
        all
    }

    fn flagger(&self, failed_checks: u32, label: &str) -> Contestant {
        Contestant::Threshold {
            label: label.into(),
            settings: self.threshold.clone(),
            interval_secs: self.threshold_interval_secs,
            failed_checks,
        }
    }
}

/// One judge configuration the benchmark scores.
#[derive(Debug, Clone)]
pub enum Contestant {
    Sequential {
        label: String,
        settings: SequentialSettings,
    },
    /// Flagger's analysis: a threshold check every `interval_secs`, rollback after
    /// `failed_checks` failed checks (Flagger's `threshold`).
    Threshold {
        label: String,
        settings: ThresholdSettings,
        interval_secs: u64,
        failed_checks: u32,
    },
}

impl Contestant {
    pub fn label(&self) -> &str {
        match self {
            Contestant::Sequential { label, .. } | Contestant::Threshold { label, .. } => label,
        }
    }

    fn judge(&self, scenario: &Scenario) -> AnyJudge {
        match self {
            Contestant::Sequential { settings, .. } => {
                let mut settings = settings.clone();
                if let Some(tol) = scenario.latency_tolerance_pct {
                    settings.latency_tolerance_pct = tol;
                }
                AnyJudge::Sequential(Box::new(SequentialJudge::new(settings)))
            }
            Contestant::Threshold { settings, .. } => {
                AnyJudge::Threshold(ThresholdJudge::new(settings.clone()))
            }
        }
    }

    /// Seconds between the judge's evaluations in a rollout (the sequential judge
    /// evaluates at the engine's analysis interval).
    fn interval_secs(&self, analysis_interval: u64) -> u64 {
        match self {
            Contestant::Sequential { .. } => analysis_interval,
            Contestant::Threshold { interval_secs, .. } => *interval_secs,
        }
        .max(1)
    }

    fn failures_to_roll_back(&self) -> u32 {
        match self {
            Contestant::Sequential { .. } => 1,
            Contestant::Threshold { failed_checks, .. } => (*failed_checks).max(1),
        }
    }
}

/// A judge of either kind, so the sequential one can answer with
/// [`SequentialJudge::outcome`] (the decision without building evidence).
enum AnyJudge {
    Sequential(Box<SequentialJudge>),
    Threshold(ThresholdJudge),
}

impl AnyJudge {
    fn observe(&mut self, sample: &rampart_core::WindowSample) {
        match self {
            AnyJudge::Sequential(j) => j.observe(sample),
            AnyJudge::Threshold(j) => j.observe(sample),
        }
    }

    fn outcome(&mut self, elapsed: u64) -> Outcome {
        match self {
            AnyJudge::Sequential(j) => j.outcome(),
            AnyJudge::Threshold(j) => j.evaluate(Timestamp(elapsed * 1_000)).outcome,
        }
    }

    fn reset(&mut self) {
        match self {
            AnyJudge::Sequential(j) => j.reset(),
            AnyJudge::Threshold(j) => j.reset(),
        }
    }
}

/// Seconds to rollback per run (`None`: never within the scenario's duration).
pub type Times = Vec<Option<u64>>;

/// A well-mixed seed per (scenario, run), so results do not depend on thread count.
fn run_seed(seed: u64, scenario_index: usize, run: u64) -> u64 {
    let mut z = seed
        ^ (scenario_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ run.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One run: every judge sees the same stream; each stops at its first rollback.
pub fn run_once(scenario: &Scenario, contestants: &[Contestant], seed: u64) -> Vec<Option<u64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stream = Stream::new(scenario);
    let mut judges: Vec<AnyJudge> = contestants.iter().map(|c| c.judge(scenario)).collect();
    let mut failed = vec![0u32; contestants.len()];
    let mut at: Vec<Option<u64>> = vec![None; contestants.len()];
    for t in 0..scenario.seconds {
        let sample = stream.second(&mut rng, t);
        let elapsed = t + 1;
        for (i, contestant) in contestants.iter().enumerate() {
            if at[i].is_some() {
                continue;
            }
            let judge = &mut judges[i];
            judge.observe(&sample);
            let fails = match contestant {
                // The engine evaluates every second; Fail is final for this judge.
                Contestant::Sequential { .. } => judge.outcome(elapsed) == Outcome::Fail,
                Contestant::Threshold { interval_secs, .. } => {
                    elapsed % (*interval_secs).max(1) == 0
                        && judge.outcome(elapsed) == Outcome::Fail
                }
            };
            if fails {
                failed[i] += 1;
                if failed[i] >= contestant.failures_to_roll_back() {
                    at[i] = Some(elapsed);
                }
            }
        }
        if at.iter().all(Option::is_some) {
            break;
        }
    }
    at
}

/// How a whole rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutEnd {
    Promoted,
    RolledBack,
    /// A step made no progress until the progress deadline (paused or failed, per
    /// `on_deadline`): not promoted, not rolled back by the judge.
    Deadline,
}

/// The shipped default schedule, as the engine runs it: each step holds, the judge
/// is evaluated every `interval`; a step ends once its hold has elapsed and its
/// latest evaluation passed; a failed evaluation rolls back (failure limit 1, or the
/// threshold judge's own count); no pass within the deadline ends the rollout.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// (canary share, hold seconds) per step.
    pub steps: Vec<(f64, u64)>,
    pub interval_secs: u64,
    pub warmup_secs: u64,
    pub progress_deadline_secs: u64,
}

impl Schedule {
    pub fn shipped_default() -> Self {
        Self {
            steps: vec![(0.05, 30), (0.25, 60), (0.50, 60)],
            interval_secs: 10,
            warmup_secs: 5,
            progress_deadline_secs: 600,
        }
    }
}

/// One rollout of `scenario` (its canary share ignored: the schedule sets it).
pub fn rollout_once(
    scenario: &Scenario,
    contestant: &Contestant,
    schedule: &Schedule,
    seed: u64,
) -> RolloutEnd {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stream = Stream::new(scenario);
    let mut judge = contestant.judge(scenario);
    let interval = contestant.interval_secs(schedule.interval_secs);
    let mut failed = 0;
    let mut t = 0u64;
    for (step, &(share, hold)) in schedule.steps.iter().enumerate() {
        if matches!(contestant, Contestant::Threshold { .. }) {
            // The threshold judge judges each step's traffic on its own.
            judge.reset();
        }
        let mut in_step = 0u64;
        let mut last = Outcome::Inconclusive;
        loop {
            let sample = stream.second_at_share(&mut rng, t, share);
            t += 1;
            in_step += 1;
            if step > 0 || in_step > schedule.warmup_secs {
                judge.observe(&sample);
            }
            if in_step.is_multiple_of(interval) {
                last = judge.outcome(t);
                if last == Outcome::Fail {
                    failed += 1;
                    if failed >= contestant.failures_to_roll_back() {
                        return RolloutEnd::RolledBack;
                    }
                }
            }
            if in_step >= hold && last == Outcome::Pass {
                break;
            }
            if in_step >= schedule.progress_deadline_secs {
                return RolloutEnd::Deadline;
            }
        }
    }
    RolloutEnd::Promoted
}

/// Runs `runs` seeds of `work` on `threads` threads, results in seed order.
fn parallel<T: Send + Default + Clone>(
    runs: u64,
    threads: usize,
    work: impl Fn(u64) -> T + Sync,
) -> Vec<T> {
    let threads = threads.max(1) as u64;
    let work = &work;
    let per_thread: Vec<Vec<(u64, T)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    (k..runs)
                        .step_by(threads as usize)
                        .map(|run| (run, work(run)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all: Vec<_> = per_thread.into_iter().flatten().collect();
    all.sort_by_key(|(run, _)| *run);
    all.into_iter().map(|(_, t)| t).collect()
}

/// Rollback times per contestant (outer) and run (inner).
pub fn run_scenario(
    scenario: &Scenario,
    scenario_index: usize,
    contestants: &[Contestant],
    runs: u64,
    threads: usize,
    seed: u64,
) -> Vec<Times> {
    let per_run = parallel(runs, threads, |run| {
        run_once(scenario, contestants, run_seed(seed, scenario_index, run))
    });
    (0..contestants.len())
        .map(|i| {
            per_run
                .iter()
                .map(|r| r.get(i).copied().flatten())
                .collect()
        })
        .collect()
}

/// Rollout ends per contestant (outer) and run (inner).
pub fn rollout_scenario(
    scenario: &Scenario,
    scenario_index: usize,
    contestants: &[Contestant],
    schedule: &Schedule,
    runs: u64,
    threads: usize,
    seed: u64,
) -> Vec<Vec<RolloutEnd>> {
    contestants
        .iter()
        .map(|c| {
            parallel(runs, threads, |run| {
                Some(rollout_once(
                    scenario,
                    c,
                    schedule,
                    run_seed(seed, scenario_index + 1_000, run),
                ))
            })
            .into_iter()
            .map(|end| end.unwrap_or(RolloutEnd::Deadline))
            .collect()
        })
        .collect()
}
