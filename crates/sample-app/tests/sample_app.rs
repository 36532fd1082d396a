//! Drives the sample app over real HTTP on 127.0.0.1, in process through `serve` and
//! as its own executable for the process-level behaviour (exit codes, signals).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use rampart_sample_app::{SampleAppArgs, SampleAppError, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), SampleAppError>>,
}

async fn start(args: SampleAppArgs) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, args, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn answers_root_health_version_and_404() {
    let mut app = start(SampleAppArgs {
        app_version: "v2".into(),
        ..SampleAppArgs::default()
    })
    .await;

    assert_eq!(get(app.addr, "/").await, (200, "hello from v2".into()));
    assert_eq!(get(app.addr, "/healthz").await, (200, "ok".into()));
    let (status, body) = get(app.addr, "/version").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    // /healthz is not counted; / and /version are.
    assert_eq!(
        json,
        serde_json::json!({"service": "sample-app", "version": "v2", "requests": 2})
    );
    assert_eq!(get(app.addr, "/nope").await.0, 404);

    app.stop.take().unwrap().send(()).unwrap();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn error_rate_one_fails_everything_but_health() {
    let app = start(SampleAppArgs {
        error_rate: 1.0,
        ..SampleAppArgs::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(app.addr, "/").await.0, 500);
        assert_eq!(get(app.addr, "/healthz").await, (200, "ok".into()));
    }
}

#[tokio::test]
async fn every_answer_names_the_version_even_a_failure() {
    let app = start(SampleAppArgs {
        app_version: "v3".into(),
        error_rate: 1.0,
        ..SampleAppArgs::default()
    })
    .await;
    for path in ["/", "/healthz", "/nope"] {
        let response = reqwest::get(format!("http://{}{path}", app.addr))
            .await
            .unwrap();
        assert_eq!(
            response.headers()[rampart_sample_app::VERSION_HEADER],
            "v3",
            "{path} answered {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn error_rate_is_a_fraction_of_requests() {
    let app = start(SampleAppArgs {
        error_rate: 0.5,
        seed: Some(42),
        ..SampleAppArgs::default()
    })
    .await;
    let mut failures = 0;
    for _ in 0..200 {
        if get(app.addr, "/").await.0 == 500 {
            failures += 1;
        }
    }
    // Seeded, so this is deterministic; the band only guards against a wrong formula.
    assert!((60..=140).contains(&failures), "{failures} of 200 failed");
}

#[tokio::test]
async fn reset_percent_closes_connections_without_an_answer() {
    let all = start(SampleAppArgs {
        reset_percent: 100.0,
        ..SampleAppArgs::default()
    })
    .await;
    for _ in 0..3 {
        // A fresh connection each time, read to the end: nothing comes back at all.
        let mut stream = tokio::net::TcpStream::connect(all.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    // Health checks are spared, so a resetting instance still becomes ready.
    assert_eq!(get(all.addr, "/healthz").await, (200, "ok".into()));

    let some = start(SampleAppArgs {
        reset_percent: 50.0,
        seed: Some(7),
        ..SampleAppArgs::default()
    })
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut resets = 0;
    for _ in 0..200 {
        match client.get(format!("http://{}/", some.addr)).send().await {
            Ok(response) => assert_eq!(response.status(), 200),
            Err(_) => resets += 1,
        }
    }
    // Seeded, so this is deterministic; the band only guards against a wrong formula.
    assert!((60..=140).contains(&resets), "{resets} of 200 reset");
}

#[tokio::test]
async fn fail_after_turns_every_later_request_into_500() {
    let app = start(SampleAppArgs {
        fail_after: Some(3),
        ..SampleAppArgs::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(app.addr, "/").await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(app.addr, "/").await.0, 500);
    }
    assert_eq!(get(app.addr, "/healthz").await.0, 200);
}

#[tokio::test]
async fn crash_after_answers_n_requests_then_refuses_connections() {
    let app = start(SampleAppArgs {
        crash_after: Some(2),
        ..SampleAppArgs::default()
    })
    .await;
    assert_eq!(get(app.addr, "/").await.0, 200);
    assert_eq!(get(app.addr, "/").await.0, 200);

    let result = app.task.await.unwrap();
    assert!(
        matches!(result, Err(SampleAppError::Crashed { requests: 2 })),
        "{result:?}"
    );
    let refused = tokio::net::TcpStream::connect(app.addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn serve_rejects_invalid_arguments() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let args = SampleAppArgs {
        error_rate: 1.5,
        ..SampleAppArgs::default()
    };
    let err = serve(listener, args, async {}).await.unwrap_err();
    assert!(err.to_string().contains("--error-rate"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_binary(port: u16, extra: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart-sample-app"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_until_healthy(addr: SocketAddr) {
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("http://{addr}/healthz")).await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("sample app on {addr} never became healthy");
}

#[tokio::test]
async fn binary_exits_with_code_3_after_crash_after_requests() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_binary(port, &["--crash-after", "1", "--version", "v9"]);
    wait_until_healthy(addr).await;
    assert_eq!(get(addr, "/").await, (200, "hello from v9".into()));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn binary_stops_cleanly_on_sigterm() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_binary(port, &[]);
    wait_until_healthy(addr).await;
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn binary_reports_bad_arguments() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart-sample-app"))
        .args(["--error-rate", "2"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("outside 0.0..=1.0"), "{stderr}");
}
