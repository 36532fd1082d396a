//! The validation phase against real processes and real HTTP/TCP servers on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
use rampart_config::{CheckConfig, CheckKind, Duration};
use rampart_engine::validation::{CheckOutcome, ValidationResult, run_checks};
use tokio::net::TcpListener;

fn check(name: &str, kind: CheckKind) -> CheckConfig {
    CheckConfig {
        name: name.into(),
        kind,
        timeout: Duration::from_secs(5),
        retries: 0,
        retry_backoff: Duration::from_millis(10),
        critical: true,
    }
}

fn command(command: &str) -> CheckKind {
    CheckKind::Command {
        command: command.into(),
        working_dir: None,
    }
}

fn http(url: String, expect_status: u16, body_contains: Option<&str>) -> CheckKind {
    CheckKind::Http {
        url,
        method: "GET".into(),
        expect_status,
        body_contains: body_contains.map(Into::into),
    }
}

fn prometheus(url: &str, query: &str, expect: &str) -> CheckKind {
    CheckKind::Prometheus {
        url: url.into(),
        query: query.into(),
        expect: expect.into(),
    }
}

/// Every outcome of a run, whichever list it is in.
fn all(result: &ValidationResult) -> impl Iterator<Item = &CheckOutcome> {
    result
        .passed
        .iter()
        .chain(&result.failed)
        .chain(&result.warnings)
}

fn outcome<'a>(result: &'a ValidationResult, name: &str) -> &'a CheckOutcome {
    all(result)
        .find(|outcome| outcome.name == name)
        .unwrap_or_else(|| panic!("no outcome for {name}: {result:#?}"))
}

fn names(outcomes: &[CheckOutcome]) -> Vec<&str> {
    outcomes
        .iter()
        .map(|outcome| outcome.name.as_str())
        .collect()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A port on 127.0.0.1 that nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Dead or a zombie waiting for its reaper: either way it runs no more.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn no_checks_can_deploy() {
    let result = run_checks(&[], Path::new(".")).await;
    assert!(result.can_deploy);
    assert!(result.passed.is_empty() && result.failed.is_empty() && result.warnings.is_empty());
    assert!(chrono::DateTime::parse_from_rfc3339(&result.started_at).is_ok());
}

#[tokio::test]
async fn checks_run_in_parallel() {
    let checks = [
        check("short", command("sleep 0.3")),
        check("medium", command("sleep 0.5")),
        check("long", command("sleep 0.8")),
    ];
    let started = Instant::now();
    let result = run_checks(&checks, Path::new(".")).await;
    let elapsed = started.elapsed();
    assert_eq!(names(&result.passed), ["short", "medium", "long"]);
    assert!(result.can_deploy);
    // One after the other would take 1.6 s.
    assert!(elapsed < StdDuration::from_millis(1400), "took {elapsed:?}");
    assert!(result.execution_time_ms >= 800);
    assert!(outcome(&result, "long").duration_ms >= 800);
}

#[tokio::test]
async fn command_output_and_exit_code_are_reported() {
    let result = run_checks(
        &[check(
            "tests",
            command("echo to-stdout; echo to-stderr >&2; exit 2"),
        )],
        Path::new("."),
    )
    .await;
    let tests = outcome(&result, "tests");
    assert!(!tests.passed);
    assert_eq!(tests.message, "exit code 2");
    assert_eq!(tests.attempts, 1);
    assert_eq!(tests.output.as_deref(), Some("to-stdout\nto-stderr\n"));
}

#[tokio::test]
async fn command_output_is_bounded_to_its_tail() {
    let result = run_checks(
        &[check(
            "chatty",
            command("head -c 200000 /dev/zero | tr '\\0' x; echo; echo last-line"),
        )],
        Path::new("."),
    )
    .await;
    let output = outcome(&result, "chatty").output.clone().unwrap();
    assert!(
        output.len() <= 64 * 1024 + 100,
        "{} bytes kept",
        output.len()
    );
    assert!(output.starts_with("[") && output.contains("earlier bytes not kept"));
    assert!(output.ends_with("last-line\n"));
}

#[tokio::test]
async fn command_runs_in_its_working_dir_relative_to_the_base_dir() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("app")).unwrap();
    std::fs::write(base.path().join("app/marker"), "here").unwrap();
    let mut in_app = check(
        "in_app",
        CheckKind::Command {
            command: "cat marker".into(),
            working_dir: Some("app".into()),
        },
    );
    let mut missing = check(
        "missing_dir",
        CheckKind::Command {
            command: "true".into(),
            working_dir: Some("nowhere".into()),
        },
    );
    in_app.retries = 0;
    missing.retries = 3;
    let result = run_checks(&[in_app, missing], base.path()).await;
    assert_eq!(outcome(&result, "in_app").output.as_deref(), Some("here"));
    let missing = outcome(&result, "missing_dir");
    assert!(!missing.passed);
    assert!(
        missing.message.contains("does not exist"),
        "{}",
        missing.message
    );
    // A missing directory is a configuration error: retrying cannot fix it.
    assert_eq!(missing.attempts, 1);
}

/// Fails until it has been run three times, counting in `count` in its directory.
const FAILS_TWICE: &str =
    "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; test $n -ge 3";

#[tokio::test]
async fn retries_until_the_check_passes() {
    let base = tempfile::tempdir().unwrap();
    let mut flaky = check("flaky", command(FAILS_TWICE));
    flaky.retries = 2;
    let result = run_checks(&[flaky], base.path()).await;
    let flaky = outcome(&result, "flaky");
    assert!(flaky.passed, "{flaky:?}");
    assert_eq!(flaky.attempts, 3);
    assert!(result.can_deploy);
    // Backoff: 10 ms, then 20 ms.
    assert!(flaky.duration_ms >= 30, "{flaky:?}");
}

#[tokio::test]
async fn gives_up_when_the_retries_run_out() {
    let base = tempfile::tempdir().unwrap();
    let mut flaky = check("flaky", command(FAILS_TWICE));
    flaky.retries = 1;
    let result = run_checks(&[flaky], base.path()).await;
    let flaky = outcome(&result, "flaky");
    assert!(!flaky.passed);
    assert_eq!(flaky.attempts, 2);
    assert_eq!(flaky.message, "exit code 1");
    assert_eq!(
        std::fs::read_to_string(base.path().join("count"))
            .unwrap()
            .trim(),
        "2"
    );
    assert!(!result.can_deploy);
}

#[tokio::test]
async fn a_timed_out_command_is_killed_with_its_whole_process_group() {
    let base = tempfile::tempdir().unwrap();
    let mut slow = check(
        "slow",
        command("echo started; echo $$ > shell.pid; sleep 30 & echo $! > sleep.pid; wait"),
    );
    slow.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = run_checks(&[slow], base.path()).await;
    assert!(started.elapsed() < StdDuration::from_secs(10));
    let slow = outcome(&result, "slow");
    assert!(!slow.passed);
    assert_eq!(slow.message, "timed out after 300ms");
    assert_eq!(slow.output.as_deref(), Some("started\n"));
    assert_eq!(names(&result.failed), ["slow"]);

    let shell = read_pid(&base.path().join("shell.pid"));
    let sleeper = read_pid(&base.path().join("sleep.pid"));
    // SIGKILL was sent before run_checks returned; give the kernel a moment to finish
    // the background child, whose reaper is not us.
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while !(is_dead(shell) && is_dead(sleeper)) && Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert!(is_dead(shell), "the shell {shell} still runs");
    assert!(
        is_dead(sleeper),
        "the background sleep {sleeper} still runs"
    );
}

#[tokio::test]
async fn background_processes_do_not_outlive_a_passing_check() {
    let base = tempfile::tempdir().unwrap();
    let result = run_checks(
        &[check(
            "leaky",
            command("sleep 30 & echo $! > sleep.pid; exit 0"),
        )],
        base.path(),
    )
    .await;
    assert!(outcome(&result, "leaky").passed);
    let sleeper = read_pid(&base.path().join("sleep.pid"));
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while !is_dead(sleeper) && Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert!(
        is_dead(sleeper),
        "the background sleep {sleeper} still runs"
    );
}

#[tokio::test]
async fn an_abandoned_check_leaves_nothing_running() {
    let base = tempfile::tempdir().unwrap();
    let mut slow = check(
        "slow",
        command("sleep 30 & echo $! > sleep.tmp; mv sleep.tmp sleep.pid; wait"),
    );
    slow.timeout = Duration::from_secs(60);
    let checks = [slow];
    let mut run = Box::pin(run_checks(&checks, base.path()));
    let pid_file = base.path().join("sleep.pid");
    // Run the check until its background process is up, then abandon it, as an aborted
    // deployment does.
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while !pid_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the check never started its sleep"
        );
        tokio::select! {
            _ = &mut run => panic!("a 30 s check finished"),
            () = tokio::time::sleep(StdDuration::from_millis(20)) => {}
        }
    }
    drop(run);
    let sleeper = read_pid(&pid_file);
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while !is_dead(sleeper) && Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert!(
        is_dead(sleeper),
        "the background sleep {sleeper} still runs"
    );
}

#[tokio::test]
async fn a_failed_critical_check_stops_the_deployment() {
    let checks = [
        check("ok", command("true")),
        check("gate", command("exit 1")),
    ];
    let result = run_checks(&checks, Path::new(".")).await;
    assert!(!result.can_deploy);
    assert_eq!(names(&result.passed), ["ok"]);
    assert_eq!(names(&result.failed), ["gate"]);
    assert!(result.warnings.is_empty());
    assert!(result.failed[0].critical);
}

#[tokio::test]
async fn a_failed_non_critical_check_is_a_warning() {
    let mut lint = check("lint", command("exit 1"));
    lint.critical = false;
    let result = run_checks(&[check("ok", command("true")), lint], Path::new(".")).await;
    assert!(result.can_deploy);
    assert_eq!(names(&result.passed), ["ok"]);
    assert!(result.failed.is_empty());
    assert_eq!(names(&result.warnings), ["lint"]);
    assert!(!result.warnings[0].passed && !result.warnings[0].critical);
}

#[tokio::test]
async fn http_checks_judge_status_and_body() {
    let server = serve(
        Router::new()
            .route("/healthz", get(|| async { "status: ready" }))
            .route(
                "/down",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
            )
            .route("/deploy-hook", post(|| async { StatusCode::ACCEPTED }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(StdDuration::from_secs(30)).await;
                    "late"
                }),
            ),
    )
    .await;
    let base = format!("http://{server}");
    let mut post_hook = check(
        "post_hook",
        CheckKind::Http {
            url: format!("{base}/deploy-hook"),
            method: "POST".into(),
            expect_status: 202,
            body_contains: None,
        },
    );
    post_hook.critical = true;
    let mut slow = check("slow", http(format!("{base}/slow"), 200, None));
    slow.timeout = Duration::from_millis(200);
    let checks = [
        check("status", http(format!("{base}/healthz"), 200, None)),
        check("body", http(format!("{base}/healthz"), 200, Some("ready"))),
        check(
            "wrong_body",
            http(format!("{base}/healthz"), 200, Some("healthy")),
        ),
        check("wrong_status", http(format!("{base}/down"), 200, None)),
        check(
            "expected_503",
            http(format!("{base}/down"), 503, Some("maintenance")),
        ),
        post_hook,
        slow,
    ];
    let result = run_checks(&checks, Path::new(".")).await;
    assert_eq!(
        names(&result.passed),
        ["status", "body", "expected_503", "post_hook"]
    );
    assert_eq!(
        names(&result.failed),
        ["wrong_body", "wrong_status", "slow"]
    );
    assert_eq!(
        outcome(&result, "wrong_body").message,
        "got 200 but the body does not contain \"healthy\""
    );
    assert_eq!(
        outcome(&result, "wrong_body").output.as_deref(),
        Some("status: ready")
    );
    assert_eq!(
        outcome(&result, "wrong_status").message,
        "expected 200, got 503"
    );
    assert_eq!(outcome(&result, "slow").message, "timed out after 200ms");
    assert_eq!(outcome(&result, "status").kind, "http");
}

#[tokio::test]
async fn http_check_against_a_closed_port_fails_clearly() {
    let port = closed_port().await;
    let mut refused = check("refused", http(format!("http://{port}/healthz"), 200, None));
    refused.retries = 1;
    let result = run_checks(&[refused], Path::new(".")).await;
    let refused = outcome(&result, "refused");
    assert!(!refused.passed);
    assert_eq!(refused.attempts, 2);
    let message = refused.message.to_lowercase();
    assert!(
        message.contains("could not connect to http://"),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn http_check_with_an_invalid_url_is_not_retried() {
    let mut broken = check("broken", http("not a url".into(), 200, None));
    broken.retries = 3;
    let result = run_checks(&[broken], Path::new(".")).await;
    let broken = outcome(&result, "broken");
    assert!(!broken.passed);
    assert_eq!(broken.attempts, 1);
    assert!(
        broken.message.starts_with("invalid URL `not a url`"),
        "{}",
        broken.message
    );
}

#[tokio::test]
async fn tcp_checks_connect_or_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    let closed = closed_port().await;
    let checks = [
        check(
            "open",
            CheckKind::Tcp {
                address: open.to_string(),
            },
        ),
        check(
            "closed",
            CheckKind::Tcp {
                address: closed.to_string(),
            },
        ),
    ];
    let result = run_checks(&checks, Path::new(".")).await;
    assert_eq!(names(&result.passed), ["open"]);
    assert_eq!(
        outcome(&result, "open").message,
        format!("connected to {open}")
    );
    assert_eq!(names(&result.failed), ["closed"]);
    let message = outcome(&result, "closed").message.to_lowercase();
    assert!(
        message.contains(&format!("could not connect to {closed}")),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
    drop(listener);
}

const ERROR_RATE_QUERY: &str =
    r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#;

/// A stand-in for Prometheus' `/api/v1/query`, answering canned results in its
/// documented format, chosen by the query text.
async fn fake_prometheus() -> String {
    async fn query(Query(params): Query<HashMap<String, String>>) -> (StatusCode, String) {
        let query = params.get("query").map(String::as_str).unwrap_or_default();
        let vector = |result: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#
            )
        };
        match query {
            ERROR_RATE_QUERY => (
                StatusCode::OK,
                vector(r#"{"metric":{},"value":[1700000000.5,"0.004"]}"#),
            ),
            "up" => (
                StatusCode::OK,
                vector(
                    r#"{"metric":{"instance":"a"},"value":[1700000000,"1"]},{"metric":{"instance":"b"},"value":[1700000000,"0"]}"#,
                ),
            ),
            "scalar(5)" => (
                StatusCode::OK,
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"5"]}}"#
                    .into(),
            ),
            "absent_metric" => (StatusCode::OK, vector("")),
            _ => (
                StatusCode::BAD_REQUEST,
                r#"{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected end of input"}"#
                    .into(),
            ),
        }
    }
    let server = serve(Router::new().route("/api/v1/query", get(query))).await;
    // A trailing slash, as users write it, must not break the endpoint path.
    format!("http://{server}/")
}

#[tokio::test]
async fn prometheus_checks_compare_the_query_value() {
    let url = fake_prometheus().await;
    let mut malformed = check("malformed_expect", prometheus(&url, "scalar(5)", "5"));
    malformed.retries = 3;
    let checks = [
        check(
            "error_rate_low",
            prometheus(&url, ERROR_RATE_QUERY, "< 0.01"),
        ),
        check(
            "error_rate_high",
            prometheus(&url, ERROR_RATE_QUERY, ">= 0.01"),
        ),
        check("scalar", prometheus(&url, "scalar(5)", "== 5")),
        check("empty", prometheus(&url, "absent_metric", "< 1")),
        check("several", prometheus(&url, "up", "== 1")),
        check("bad_query", prometheus(&url, "sum(", "< 1")),
        malformed,
    ];
    let result = run_checks(&checks, Path::new(".")).await;
    assert_eq!(names(&result.passed), ["error_rate_low", "scalar"]);
    assert_eq!(
        outcome(&result, "error_rate_low").message,
        "value 0.004 satisfies < 0.01"
    );
    assert_eq!(
        outcome(&result, "error_rate_high").message,
        "value 0.004 does not satisfy >= 0.01"
    );
    let empty = &outcome(&result, "empty").message;
    assert!(empty.contains("no series"), "{empty}");
    let several = &outcome(&result, "several").message;
    assert!(several.contains("returned 2 series"), "{several}");
    let bad_query = &outcome(&result, "bad_query").message;
    assert!(
        bad_query.starts_with("Prometheus answered 400"),
        "{bad_query}"
    );
    assert!(bad_query.contains("parse error"), "{bad_query}");
    let malformed = outcome(&result, "malformed_expect");
    assert!(
        malformed.message.starts_with("invalid expect:"),
        "{}",
        malformed.message
    );
    assert_eq!(malformed.attempts, 1);
    assert!(!result.can_deploy);
}

#[tokio::test]
async fn prometheus_unreachable_fails_clearly() {
    let port = closed_port().await;
    let result = run_checks(
        &[check(
            "metrics",
            prometheus(&format!("http://{port}"), "up", "== 1"),
        )],
        Path::new("."),
    )
    .await;
    let message = outcome(&result, "metrics").message.to_lowercase();
    assert!(message.contains("/api/v1/query"), "{message}");
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn the_result_round_trips_through_json() {
    let mut lint = check("lint", command("echo style; exit 3"));
    lint.critical = false;
    let result = run_checks(&[check("ok", command("true")), lint], Path::new(".")).await;
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["can_deploy"], true);
    assert_eq!(json["warnings"][0]["name"], "lint");
    assert_eq!(json["warnings"][0]["kind"], "command");
    assert_eq!(json["warnings"][0]["message"], "exit code 3");
    assert_eq!(json["warnings"][0]["output"], "style\n");
    assert_eq!(json["passed"][0]["output"], serde_json::Value::Null);
    let back: ValidationResult = serde_json::from_value(json).unwrap();
    assert_eq!(back, result);
}
