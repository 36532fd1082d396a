//! Replaying recorded traffic: one `WindowSample` per line as JSON (JSON lines), the
//! exact per-second shape the router hands the engine, so nothing is lost to
//! summarising. Both judges see the file as the engine would feed it, and the verdict
//! timeline is printed.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use rampart_core::WindowSample;
use rampart_core::judge::{Judge, Outcome, SequentialJudge, ThresholdJudge};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::run::JudgeSetup;
use crate::scenario::{Drift, Scenario, SetModel, Stream, Truth};

#[derive(Debug)]
pub enum ReplayError {
    Io(std::io::Error),
    Parse { line: usize, message: String },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Io(e) => write!(f, "{e}"),
            ReplayError::Parse { line, message } => write!(
                f,
                "line {line}: {message} (expected one JSON WindowSample per line)"
            ),
        }
    }
}

impl From<std::io::Error> for ReplayError {
    fn from(e: std::io::Error) -> Self {
        ReplayError::Io(e)
    }
}

pub fn read_samples(path: &Path) -> Result<Vec<WindowSample>, ReplayError> {
    let file = std::fs::File::open(path)?;
    let mut samples = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let sample = serde_json::from_str(&line).map_err(|e| ReplayError::Parse {
            line: i + 1,
            message: e.to_string(),
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn label(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "inconclusive",
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "-".into(), |u| format!("{:.0}", u as f64 / 1_000.0))
}

/// The verdict timeline as a markdown table, then the final sequential verdict (JSON).
pub fn timeline(samples: &[WindowSample], setup: &JudgeSetup) -> String {
    let mut sequential = SequentialJudge::new(setup.sequential.clone());
    let mut threshold = ThresholdJudge::new(setup.threshold.clone());
    let interval = setup.threshold_interval_secs.max(1) as usize;
    let mut out = String::new();
    out.push_str("| s | canary req | canary err | canary p95 ms | stable req | stable err | stable p95 ms | sequential | threshold |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut last_findings = Vec::new();
    let mut notes = Vec::new();
    let mut last_verdict = None;
    for (i, s) in samples.iter().enumerate() {
        sequential.observe(s);
        threshold.observe(s);
        let v = sequential.evaluate(s.end);
        let thr = if (i + 1) % interval == 0 {
            let tv = threshold.evaluate(s.end);
            if tv.outcome == Outcome::Fail {
                notes.push(format!("{} s, threshold: {}", i + 1, tv.reason));
            }
            label(tv.outcome)
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            s.canary.requests,
            s.canary.errors,
            ms(s.canary.latency.quantile_us(0.95)),
            s.stable.requests,
            s.stable.errors,
            ms(s.stable.latency.quantile_us(0.95)),
            label(v.outcome),
            thr
        );
        // Note each new finding once, not every second the verdict stays failed.
        let findings = sequential.findings();
        if findings != last_findings && v.outcome == Outcome::Fail {
            notes.push(format!("{} s, sequential: {}", i + 1, v.reason));
        }
        last_findings = findings;
        last_verdict = Some(v);
    }
    if !notes.is_empty() {
        out.push_str("\nFailures:\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    if let Some(v) = last_verdict {
        out.push_str("\nFinal sequential verdict:\n\n```json\n");
        out.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default());
        out.push_str("\n```\n");
    }
    out
}

/// The simulated scenario `--record` writes: a canary that is healthy for
/// 40 s, then errors at 4 % (stable 0.5 %) with a 30 % slower p95.
pub fn demo_scenario(seconds: u64) -> Scenario {
    let stable = SetModel {
        error_rate: 0.005,
        median_ms: 80.0,
        sigma: 0.5,
    };
    Scenario {
        name: "replay demo".into(),
        truth: Truth::Regressed,
        rps: 200,
        canary_share: 0.2,
        stable,
        canary: SetModel {
            error_rate: 0.04,
            sigma: 0.5 + 1.3f64.ln() / 1.644_854,
            ..stable
        },
        onset_secs: 40,
        seconds,
        latency_tolerance_pct: None,
        drift: Drift::None,
    }
}

/// Writes a scenario's stream as JSON lines.
pub fn record(scenario: &Scenario, seed: u64, out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stream = Stream::new(scenario);
    for t in 0..scenario.seconds {
        let sample = stream.second(&mut rng, t);
        serde_json::to_writer(&mut *out, &sample)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
