//! The validation phase of a deployment: the service's checks run in parallel before
//! any traffic moves, each with its own timeout, retries with exponential backoff, and
//! a critical-or-warning verdict.
//!
//! A failed critical check makes [`ValidationResult::can_deploy`] false; a failed
//! non-critical one is reported as a warning and does not stop the deployment.

mod attempt;
mod command;
mod comparison;
mod http;
mod outcome;
mod prometheus;
mod retry;
mod tail;
mod tcp;

use std::future::Future;
use std::path::Path;

use chrono::{SecondsFormat, Utc};
use futures_util::future::join_all;
use rampart_config::{CheckConfig, CheckKind, Duration as ConfigDuration};
use tokio::time::Instant;

use attempt::Attempt;
pub use outcome::{CheckOutcome, ValidationResult};

/// Runs every check concurrently and sorts the outcomes into passed, failed (critical)
/// and warnings (non-critical). Relative `working_dir`s of command checks are resolved
/// against `base_dir`. Within each list, outcomes keep the order of `checks`.
pub async fn run_checks(checks: &[CheckConfig], base_dir: &Path) -> ValidationResult {
    let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let started = Instant::now();
    let outcomes = join_all(checks.iter().map(|check| run_check(check, base_dir))).await;
    let mut result = ValidationResult {
        passed: Vec::new(),
        failed: Vec::new(),
        warnings: Vec::new(),
        can_deploy: true,
        execution_time_ms: 0,
        started_at,
    };
    for outcome in outcomes {
        if outcome.passed {
            result.passed.push(outcome);
        } else if outcome.critical {
            result.can_deploy = false;
            result.failed.push(outcome);
        } else {
            result.warnings.push(outcome);
        }
    }
    result.execution_time_ms = millis(started.elapsed());
    result
}

async fn run_check(check: &CheckConfig, base_dir: &Path) -> CheckOutcome {
    let started = Instant::now();
    let (last, attempts) =
        retry::run_with_retries(check.retries, check.retry_backoff.get(), || {
            probe(check, base_dir)
        })
        .await;
    let outcome = CheckOutcome {
        name: check.name.clone(),
        kind: check.kind.name().to_owned(),
        critical: check.critical,
        passed: last.passed,
        attempts,
        duration_ms: millis(started.elapsed()),
        message: last.message,
        output: last.output,
    };
    if outcome.passed {
        tracing::info!(check = %outcome.name, attempts, "check passed: {}", outcome.message);
    } else {
        tracing::warn!(
            check = %outcome.name,
            attempts,
            critical = outcome.critical,
            "check failed: {}",
            outcome.message
        );
    }
    outcome
}

/// One attempt of a check, bounded by its timeout.
async fn probe(check: &CheckConfig, base_dir: &Path) -> Attempt {
    let timeout = check.timeout;
    match &check.kind {
        // A command enforces its own timeout: it must kill the process group, which a
        // dropped future cannot do.
        CheckKind::Command {
            command,
            working_dir,
        } => {
            let dir = match working_dir {
                Some(dir) => base_dir.join(dir),
                None => base_dir.to_path_buf(),
            };
            command::run(command, &dir, timeout).await
        }
        CheckKind::Http {
            url,
            method,
            expect_status,
            body_contains,
        } => {
            within(
                timeout,
                http::probe(url, method, *expect_status, body_contains.as_deref()),
            )
            .await
        }
        CheckKind::Tcp { address } => within(timeout, tcp::probe(address)).await,
        CheckKind::Prometheus { url, query, expect } => {
            within(timeout, prometheus::probe(url, query, expect)).await
        }
    }
}

async fn within(timeout: ConfigDuration, attempt: impl Future<Output = Attempt>) -> Attempt {
    match tokio::time::timeout(timeout.get(), attempt).await {
        Ok(attempt) => attempt,
        Err(_) => Attempt::timed_out(timeout),
    }
}

fn millis(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
