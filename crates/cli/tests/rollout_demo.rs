//! `rampart demo --exit-when-done`: the whole product on this machine — a healthy v2
//! promoted, a v3 failing one request in ten rolled back — must end as expected, with
//! exit code 0. It takes about a minute.

mod support;

use std::time::Duration;

use support::run_cli_timeout;

#[test]
fn the_demo_promotes_v2_rolls_back_v3_and_exits_0() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = run_cli_timeout(
        &[
            "demo",
            "--exit-when-done",
            "--api-listen",
            "127.0.0.1:0",
            "--service-listen",
            "127.0.0.1:0",
        ],
        cwd.path(),
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("outcome: as expected (v2 promoted, v3 rolled back)"),
        "{stdout}"
    );
    assert!(stdout.contains("chain verified"), "{stdout}");
    // A newcomer is told where to watch it live, and how to sign in.
    let dashboard = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("dashboard http://"))
        .unwrap_or_else(|| panic!("no dashboard line:\n{stdout}"));
    assert!(dashboard.contains("admin token"), "{dashboard}");
    // The healthy release cost users nothing.
    let v2_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("v2: succeeded"))
        .unwrap_or_else(|| panic!("no v2 summary line:\n{stdout}"));
    assert!(
        v2_line.contains("users saw 0 failed of"),
        "{v2_line}\n{stdout}"
    );
}
