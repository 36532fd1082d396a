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

use crate::report::ScenarioSummary;
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
            args.scenario
                .as_ref()
                .is_none_or(|f| s.name.contains(f.as_str()))
        })
        .map(|(i, mut s)| {
            s.seconds = args.seconds;
            (i, s)
        })
        .collect();
    let started = Instant::now();
    let mut summaries = Vec::new();
    for (index, scenario) in scenarios {
        let t0 = Instant::now();
        let outcomes = run::run_scenario(&scenario, index, &setup, args.runs, threads, args.seed);
        let summary = ScenarioSummary::new(scenario, &outcomes);
        eprintln!(
            "{:<34} {:>6.1} s  sequential {:>5.1}%  threshold {:>5.1}% rolled back",
            summary.scenario.name,
            t0.elapsed().as_secs_f64(),
            100.0 * summary.sequential.rollback_rate,
            100.0 * summary.threshold.rollback_rate,
        );
        summaries.push(summary);
    }
    match args.format {
        Format::Markdown => {
            print!("{}", report::markdown(&summaries));
            println!(
                "\n{} runs x {} s per scenario, 1000 rps, 10% canary, alpha {}, threshold judge every {} s; seed {}; {} threads; {:.0} s wall time.",
                args.runs,
                args.seconds,
                args.alpha,
                args.interval,
                args.seed,
                threads,
                started.elapsed().as_secs_f64()
            );
            let false_rollbacks = summaries
                .iter()
                .filter(|s| s.scenario.truth == Truth::Healthy)
                .map(|s| s.sequential.rollback_rate)
                .fold(0.0, f64::max);
            println!(
                "Worst sequential false-rollback rate on healthy scenarios: {:.2}%.",
                100.0 * false_rollbacks
            );
        }
        Format::Json => match serde_json::to_string_pretty(&summaries) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("cannot encode results: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}
