//! Runs a scenario many times on both cores and records, per run and per judge, the
//! second at which the judge rolled the canary back (if it did).

use rampart_core::Timestamp;
use rampart_core::judge::{
    Judge, Outcome, SequentialJudge, SequentialSettings, ThresholdJudge, ThresholdSettings,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::scenario::{Scenario, Stream};

#[derive(Debug, Clone)]
pub struct JudgeSetup {
    pub sequential: SequentialSettings,
    pub threshold: ThresholdSettings,
    /// Seconds between threshold evaluations (Flagger's `interval`).
    pub threshold_interval_secs: u64,
}

/// Seconds to rollback per run (`None`: never within the scenario's duration).
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub sequential: Vec<Option<u64>>,
    pub threshold: Vec<Option<u64>>,
}

/// (run index, sequential rollback second, threshold rollback second).
type RunResult = (u64, Option<u64>, Option<u64>);

/// A well-mixed seed per (scenario, run), so results do not depend on thread count.
fn run_seed(seed: u64, scenario_index: usize, run: u64) -> u64 {
    let mut z = seed
        ^ (scenario_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ run.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One run: both judges see the same stream; each stops at its first rollback.
pub fn run_once(scenario: &Scenario, setup: &JudgeSetup, seed: u64) -> (Option<u64>, Option<u64>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stream = Stream::new(scenario);
    let mut sequential_settings = setup.sequential.clone();
    if let Some(tol) = scenario.latency_tolerance_pct {
        sequential_settings.latency_tolerance_pct = tol;
    }
    let mut sequential = SequentialJudge::new(sequential_settings);
    let mut threshold = ThresholdJudge::new(setup.threshold.clone());
    let interval = setup.threshold_interval_secs.max(1);
    let (mut seq_at, mut thr_at) = (None, None);
    for t in 0..scenario.seconds {
        let sample = stream.second(&mut rng, t);
        let elapsed = t + 1;
        if seq_at.is_none() {
            sequential.observe(&sample);
            // The engine evaluates every second; outcome() is evaluate()'s decision
            // without building the evidence text.
            if sequential.outcome() == Outcome::Fail {
                seq_at = Some(elapsed);
            }
        }
        if thr_at.is_none() {
            threshold.observe(&sample);
            if elapsed % interval == 0
                && threshold.evaluate(Timestamp(elapsed * 1_000)).outcome == Outcome::Fail
            {
                thr_at = Some(elapsed);
            }
        }
        if seq_at.is_some() && thr_at.is_some() {
            break;
        }
    }
    (seq_at, thr_at)
}

pub fn run_scenario(
    scenario: &Scenario,
    scenario_index: usize,
    setup: &JudgeSetup,
    runs: u64,
    threads: usize,
    seed: u64,
) -> Outcomes {
    let threads = threads.max(1) as u64;
    let per_thread: Vec<Vec<RunResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    (k..runs)
                        .step_by(threads as usize)
                        .map(|run| {
                            let (s, t) =
                                run_once(scenario, setup, run_seed(seed, scenario_index, run));
                            (run, s, t)
                        })
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
    all.sort_by_key(|&(run, _, _)| run);
    Outcomes {
        sequential: all.iter().map(|&(_, s, _)| s).collect(),
        threshold: all.iter().map(|&(_, _, t)| t).collect(),
    }
}
