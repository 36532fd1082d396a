//! rampart-judge-bench: how good are the canary judges' decisions?
//!
//! Simulates request streams with known truth, feeds them through the real judges
//! with a simulated clock, and prints for each scenario the share of runs rolled back
//! and the median and p95 time to rollback, for the sequential judge and for a
//! Flagger-default threshold judge side by side. `--replay FILE` instead prints the
//! verdict timeline of recorded traffic. See docs/BENCHMARKS-judge.md.

mod replay;
mod report;
mod run;
mod sampling;
mod scenario;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use rampart_core::judge::{SequentialSettings, ThresholdSettings};

use crate::report::{RolloutSummary, ScenarioSummary};
use crate::run::JudgeSetup;
use crate::scenario::{Scenario, Truth};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Markdown,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "rampart-judge-bench",
    about = "Decision-quality benchmark of rampart's canary judges"
)]
struct Args {
    /// Runs per scenario (healthy scenarios run the full duration).
    #[arg(long, default_value_t = 1_000)]
    runs: u64,
    /// Seconds per run.
    #[arg(long, default_value_t = 3_600)]
    seconds: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    scenario: Option<String>,
    /// Sequential judge: false-rollback budget over the whole rollout.
    #[arg(long, default_value_t = 0.01)]
    alpha: f64,
    /// Threshold judge: seconds between evaluations.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Print the verdict timeline of a recorded file (JSON lines of WindowSample).
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Skip the whole-rollout (false-promotion) table.
    #[arg(long, conflicts_with = "rollouts_only")]
    skip_rollouts: bool,
    /// Only the whole-rollout (false-promotion) table.
    #[arg(long)]
    rollouts_only: bool,
    /// Write the demo scenario's stream (120 s) as JSON lines to FILE and exit.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

fn setup(args: &Args) -> JudgeSetup {
    JudgeSetup {
        sequential: SequentialSettings {
            alpha: args.alpha,
            ..SequentialSettings::default()
        },
        threshold: ThresholdSettings::flagger_default(),
        threshold_interval_secs: args.interval,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        eprintln!(
            "--alpha must be between 0 and 1 (exclusive), got {}",
            args.alpha
        );
        return ExitCode::from(2);
    }
    let setup = setup(&args);

    if let Some(path) = &args.record {
        let result = std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            replay::record(&replay::demo_scenario(120), args.seed, &mut w)?;
            w.flush()
        });
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }

    if let Some(path) = &args.replay {
        return match replay::read_samples(path) {
            Ok(samples) => {
                print!("{}", replay::timeline(&samples, &setup));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot replay {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let scenarios: Vec<(usize, Scenario)> = Scenario::standard()
        .into_iter()
        .enumerate()
        .filter(|(_, s)| {
            !args.rollouts_only
                && args
                    .scenario
                    .as_ref()
                    .is_none_or(|f| s.name.contains(f.as_str()))
        })
        .map(|(i, mut s)| {
            s.seconds = args.seconds;
            (i, s)
        })
        .collect();
    let started = Instant::now();
    let contestants = setup.contestants();
    let labels: Vec<String> = contestants.iter().map(|c| c.label().to_string()).collect();
    let mut summaries = Vec::new();
    for (index, scenario) in scenarios {
        let t0 = Instant::now();
        let times = run::run_scenario(
            &scenario,
            index,
            &contestants,
            args.runs,
            threads,
            args.seed,
        );
        let summary = ScenarioSummary::new(scenario, &labels, &times);
        let rates: Vec<String> = summary
            .judges
            .iter()
            .map(|(l, j)| format!("{l} {:.1}%", 100.0 * j.rollback_rate))
            .collect();
        eprintln!(
            "{:<42} {:>6.1} s  rolled back: {}",
            summary.scenario.name,
            t0.elapsed().as_secs_f64(),
            rates.join(", ")
        );
        summaries.push(summary);
    }

    // Whole rollouts on the shipped default schedule at low traffic: how often is a
    // regressed canary promoted?
    let schedule = run::Schedule::shipped_default();
    let rollout_contestants = setup.rollout_contestants();
    let rollout_labels: Vec<String> = rollout_contestants
        .iter()
        .map(|c| c.label().to_string())
        .collect();
    let mut rollouts = Vec::new();
    if !args.skip_rollouts {
        for (index, scenario) in Scenario::low_traffic()
            .into_iter()
            .enumerate()
            .filter(|(_, s)| {
                args.scenario
                    .as_ref()
                    .is_none_or(|f| s.name.contains(f.as_str()))
            })
        {
            let t0 = Instant::now();
            let ends = run::rollout_scenario(
                &scenario,
                index,
                &rollout_contestants,
                &schedule,
                args.runs,
                threads,
                args.seed,
            );
            let summary = RolloutSummary::new(scenario, &rollout_labels, &ends);
            eprintln!(
                "rollout: {:<33} {:>6.1} s",
                summary.scenario.name,
                t0.elapsed().as_secs_f64()
            );
            rollouts.push(summary);
        }
    }

    match args.format {
        Format::Markdown => {
            if !summaries.is_empty() {
                print!("{}", report::markdown(&summaries));
            }
            println!(
                "\n{} runs x {} s per scenario, 1000 rps, 10% canary, alpha {}, Flagger judges every {} s; seed {}; {} threads.",
                args.runs, args.seconds, args.alpha, args.interval, args.seed, threads,
            );
            let false_rollbacks = summaries
                .iter()
                .filter(|s| s.scenario.truth == Truth::Healthy)
                .filter_map(|s| s.judges.first().map(|(_, j)| j.rollback_rate))
                .fold(0.0, f64::max);
            println!(
                "Worst sequential false-rollback rate on healthy scenarios: {:.2}%.",
                100.0 * false_rollbacks
            );
            if !rollouts.is_empty() {
                println!();
                print!("{}", report::rollout_markdown(&rollouts));
                println!(
                    "\n{} rollouts per scenario and judge on the shipped default schedule (5% 30 s, 25% 1 m, 50% 1 m; analysis every 10 s; 5 s warm-up; progress deadline 10 m) at 200 rps in all.",
                    args.runs
                );
            }
            println!("Wall time {:.0} s.", started.elapsed().as_secs_f64());
        }
        Format::Json => {
            let all = serde_json::json!({ "rollbacks": summaries, "rollouts": rollouts });
            match serde_json::to_string_pretty(&all) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("cannot encode results: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
