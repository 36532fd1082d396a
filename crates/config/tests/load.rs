//! Reading config files from disk: path resolution, unreadable files, the
//! `check-config` summary, and the defaults a minimal service gets.

use std::path::Path;

use rampart_config::{
    AutoscaleMetric, AutoscaleMode, BackendConfig, ConfigError, Duration, check, load, parse,
};

const MINIMAL_SERVICE: &str = r#"
[[service]]
name = "web"
listen = "127.0.0.1:8080"
backend = { kind = "static", stable = ["127.0.0.1:9001"] }
"#;

#[test]
fn relative_data_dir_is_resolved_against_the_config_folder() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("rampart.toml");
    std::fs::write(&path, "[server]\ndata_dir = \"state\"\n").unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.server.data_dir, folder.path().join("state"));
}

#[test]
fn absolute_data_dir_is_kept() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("rampart.toml");
    std::fs::write(&path, "[server]\ndata_dir = \"/srv/rampart\"\n").unwrap();
    assert_eq!(
        load(&path).unwrap().server.data_dir,
        Path::new("/srv/rampart")
    );
}

#[test]
fn parse_leaves_relative_paths_as_written() {
    let config = parse("[server]\ndata_dir = \"state\"\n", "rampart.toml").unwrap();
    assert_eq!(config.server.data_dir, Path::new("state"));
}

#[test]
fn a_missing_file_names_the_path() {
    let error = load(Path::new("/nonexistent/rampart.toml")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.diagnostics().is_empty());
    let text = error.to_string();
    assert!(
        text.starts_with("error: cannot read config file `/nonexistent/rampart.toml`"),
        "{text}"
    );
    // The OS error is in the message once, and not again as a source a printer of
    // the error chain would append.
    assert_eq!(text.matches("os error").count(), 1, "{text}");
    assert!(std::error::Error::source(&error).is_none());
}

#[test]
fn errors_in_a_loaded_file_carry_its_path() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("rampart.toml");
    std::fs::write(&path, "[server]\nlisten = 7070\n").unwrap();
    let error = load(&path).unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.file, path.display().to_string());
    assert_eq!((diagnostic.line, diagnostic.column), (2, 10));
    assert_eq!(diagnostic.snippet, "listen = 7070");
    assert_eq!(
        diagnostic.help.as_deref(),
        Some("put it in quotes: `listen = \"7070\"`")
    );
}

#[test]
fn all_semantic_errors_are_reported_at_once() {
    let source = r#"
[[service]]
name = "Bad Name"
listen = "127.0.0.1:8080"
backend = { kind = "static", stable = [] }

[service.strategy]
steps = [{ weight = 101, hold = "1s" }]
"#;
    let error = parse(source, "rampart.toml").unwrap_err();
    let messages: Vec<&str> = error
        .diagnostics()
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "invalid service name `Bad Name`",
            "static backend has no stable upstream",
            "step weight 101 is out of range",
        ]
    );
}

#[test]
fn a_minimal_service_gets_production_defaults() {
    let config = parse(MINIMAL_SERVICE, "rampart.toml").unwrap();
    let web = &config.services[0];
    assert_eq!(web.strategy.steps.len(), 3);
    assert_eq!(web.analysis.interval, Duration::from_secs(10));
    assert_eq!(web.router.version_header, None, "clients cannot pick a set");
    assert!(web.checks.is_empty());
    let BackendConfig::Static(upstreams) = &web.backend else {
        panic!("static backend");
    };
    assert_eq!(upstreams.stable_version, "v1");
}

#[test]
fn checks_get_their_defaults_and_keys_of_another_kind_are_rejected() {
    let with_check = format!(
        "{MINIMAL_SERVICE}\n[[service.check]]\nname = \"smoke\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9001/\"\n"
    );
    let config = parse(&with_check, "rampart.toml").unwrap();
    let check = &config.services[0].checks[0];
    assert_eq!(check.timeout, Duration::from_secs(60));
    assert!(check.critical);
    assert_eq!(check.retries, 0);

    let stray = format!("{with_check}command = \"make test\"\n");
    let error = parse(&stray, "rampart.toml").unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(
        diagnostic.message,
        "unknown key `command` in [[service.check]]"
    );
    assert!(
        diagnostic
            .help
            .as_deref()
            .unwrap_or_default()
            .starts_with("`command` belongs to command checks, not to http ones"),
        "{diagnostic:?}"
    );
}

#[test]
fn a_service_may_listen_on_port_zero_alongside_another() {
    let source = r#"
[[service]]
name = "a"
listen = "127.0.0.1:0"
backend = { kind = "static", stable = ["127.0.0.1:9001"] }

[[service]]
name = "b"
listen = "127.0.0.1:0"
backend = { kind = "static", stable = ["127.0.0.1:9002"] }
"#;
    parse(source, "rampart.toml").expect("port 0 means any free port, so it never clashes");
}

#[test]
fn check_config_summarises_services_backends_and_steps() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("rampart.toml");
    let source = format!(
        "{MINIMAL_SERVICE}\n[[service]]\nname = \"api\"\nlisten = \"127.0.0.1:8081\"\n[service.backend]\nkind = \"process\"\ncommand = \"./api --port {{port}}\"\ninstances = 1\n[service.strategy]\nsteps = [{{ weight = 20, hold = \"1m\" }}]\n[[service.check]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:5432\"\ncritical = false\n"
    );
    std::fs::write(&path, source).unwrap();
    let summary = check(&path).unwrap();
    let expected = format!(
        "server: listen 127.0.0.1:7070, data in {}, rollouts in flight after a restart: roll back
services: 2
  web: listen 127.0.0.1:8080
    backend: static, stable 127.0.0.1:9001 (v1), canary none
    steps: 5% for 30s, 25% for 1m, 50% for 1m, then promote to 100%
  api: listen 127.0.0.1:8081
    backend: process, 1 instance of `./api --port {{port}}`, ready at /healthz, first version v1
    steps: 20% for 1m, then promote to 100%
    checks: db (tcp, warning)",
        folder.path().join("rampart-data").display()
    );
    assert_eq!(summary, expected);
}

#[test]
fn crlf_line_endings_locate_errors_on_the_right_line() {
    let error = parse("[server]\r\nlisen = \"127.0.0.1:7070\"\r\n", "rampart.toml").unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert_eq!((diagnostic.line, diagnostic.column), (2, 1));
    assert_eq!(diagnostic.snippet, "lisen = \"127.0.0.1:7070\"");
}

#[test]
fn telemetry_defaults_to_five_seconds_one_hour_and_a_day() {
    let config = parse(MINIMAL_SERVICE, "rampart.toml").unwrap();
    assert_eq!(config.telemetry.interval, Duration::from_secs(5));
    assert_eq!(config.telemetry.retention, Duration::from_secs(3600));
    assert_eq!(
        config.telemetry.downsampled_retention,
        Duration::from_secs(86_400)
    );
    assert_eq!(config.telemetry.warn_error_rate, 5.0);
}

#[test]
fn bad_telemetry_settings_are_reported_on_their_lines() {
    let source = "[telemetry]\ninterval = \"2m\"\nretention = \"1h\"\ndownsampled_retention = \"30m\"\nwarn_error_rate = 0\nbogus = 1\n";
    let text = parse(source, "rampart.toml").unwrap_err().to_string();
    assert!(text.contains("bogus"), "{text}");
    let source = "[telemetry]\ninterval = \"2m\"\nretention = \"1h\"\ndownsampled_retention = \"30m\"\nwarn_error_rate = 0\n";
    let error = parse(source, "rampart.toml").unwrap_err();
    let lines: Vec<(usize, String)> = error
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.message.clone()))
        .collect();
    assert!(
        lines
            .iter()
            .any(|(line, m)| *line == 2 && m.contains("`interval` is out of range")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|(line, m)| *line == 4 && m.contains("`downsampled_retention`")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|(line, m)| *line == 5 && m.contains("`warn_error_rate`")),
        "{lines:?}"
    );
}

#[test]
fn telemetry_retention_is_bounded_in_points_per_series() {
    let source =
        "[telemetry]\ninterval = \"1s\"\nretention = \"24h\"\ndownsampled_retention = \"24h\"\n";
    let error = parse(source, "rampart.toml").unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.line, 3);
    assert!(diagnostic.message.contains("86400 points"), "{error}");
}

#[test]
fn the_api_may_listen_beyond_loopback_only_when_insecure_listen_says_so() {
    let service = "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\nbackend = { kind = \"static\", stable = [\"127.0.0.1:9001\"] }\n";
    let wide = format!("[server]\nlisten = \"0.0.0.0:7070\"\n\n{service}");
    assert!(rampart_config::parse(&wide, "wide.toml").is_err());
    let allowed =
        format!("[server]\nlisten = \"0.0.0.0:7070\"\ninsecure_listen = true\n\n{service}");
    let config = rampart_config::parse(&allowed, "allowed.toml").expect("allowed");
    assert!(config.server.insecure_listen);
    let loopback = format!("[server]\nlisten = \"[::1]:7070\"\n\n{service}");
    assert!(rampart_config::parse(&loopback, "loopback.toml").is_ok());
}

const AUTOSCALED: &str = "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n[service.backend]\nkind = \"process\"\ncommand = \"./app --port {port}\"\ninstances = 2\n";

#[test]
fn autoscale_reads_as_issue_14_writes_it_with_hpa_defaults() {
    let source = format!(
        "{AUTOSCALED}[service.autoscale]\nmin = 2\nmax = 20\ntargets = [ {{ metric = \"cpu\", value = 70 }}, {{ metric = \"rps_per_instance\", value = 400 }}, {{ metric = \"p95_ms\", value = 250 }} ]\nsync = \"15s\"\nscale_down_stabilization = \"5m\"\nscale_up = {{ policies = [ {{ instances = 4, period = \"15s\" }}, {{ percent = 100, period = \"15s\" }} ], select = \"max\" }}\nscale_down = {{ policies = [ {{ percent = 100, period = \"15s\" }} ], select = \"max\" }}\nmode = \"reactive\"\n"
    );
    let config = parse(&source, "rampart.toml").unwrap();
    let autoscale = config.services[0].autoscale.clone().unwrap();
    assert_eq!((autoscale.min, autoscale.max), (2, 20));
    assert_eq!(autoscale.targets.len(), 3);
    assert_eq!(autoscale.targets[1].metric, AutoscaleMetric::RpsPerInstance);
    let up = autoscale.scale_up.unwrap();
    assert_eq!(up.policies[0].instances, Some(4));
    assert_eq!(up.policies[1].percent, Some(100));
    assert_eq!(autoscale.mode, AutoscaleMode::Reactive);

    let minimal = format!(
        "{AUTOSCALED}[service.autoscale]\nmax = 4\ntargets = [{{ metric = \"cpu\", value = 70 }}]\n"
    );
    let autoscale = parse(&minimal, "rampart.toml").unwrap().services[0]
        .autoscale
        .clone()
        .unwrap();
    assert_eq!(autoscale.min, 1);
    assert_eq!(autoscale.sync, Duration::from_secs(15));
    assert_eq!(autoscale.scale_down_stabilization, Duration::from_secs(300));
    assert!(autoscale.scale_up.is_none() && autoscale.scale_down.is_none());
}

#[test]
fn bad_autoscale_settings_are_rejected_with_their_lines() {
    // Line 8 is [service.autoscale]; each bad value is on its own line after it.
    let source = format!(
        "{AUTOSCALED}[service.autoscale]\nmin = 3\nmax = 2\ntargets = [{{ metric = \"cpu\", value = 0 }}]\nsync = \"20m\"\nscale_down = {{ policies = [{{ instances = 1, percent = 10, period = \"15s\" }}] }}\nmax_cost_per_hour = 1.0\n"
    );
    let error = parse(&source, "rampart.toml").unwrap_err();
    let lines: Vec<(usize, String)> = error
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.message.clone()))
        .collect();
    for (line, text) in [
        (10, "`max` (2) is below `min` (3)"),
        (11, "target value 0 for `cpu` is out of range"),
        (12, "`sync` is out of range"),
        (13, "exactly one of `instances` and `percent`"),
        (14, "`max_cost_per_hour` needs `cost_per_instance_hour`"),
    ] {
        assert!(
            lines.iter().any(|(l, m)| *l == line && m.contains(text)),
            "line {line}: {text}: {lines:?}"
        );
    }

    let unknown_metric = format!(
        "{AUTOSCALED}[service.autoscale]\nmax = 4\ntargets = [{{ metric = \"gpu\", value = 70 }}]\n"
    );
    let text = parse(&unknown_metric, "rampart.toml")
        .unwrap_err()
        .to_string();
    assert!(text.contains("rampart.toml:10"), "{text}");
    assert!(text.contains("rps_per_instance"), "{text}");

    let static_backend = "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n[service.backend]\nkind = \"static\"\nstable = [\"127.0.0.1:9001\"]\n[service.autoscale]\nmax = 4\ntargets = [{ metric = \"cpu\", value = 70 }]\n";
    let text = parse(static_backend, "rampart.toml")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("autoscaling needs the process backend"),
        "{text}"
    );

    let outside = format!(
        "{AUTOSCALED}[service.autoscale]\nmin = 3\nmax = 4\ntargets = [{{ metric = \"cpu\", value = 70 }}]\n"
    );
    let error = parse(&outside, "rampart.toml").unwrap_err();
    assert!(
        error
            .diagnostics()
            .iter()
            .any(|d| d.line == 7 && d.message.contains("outside the autoscale range 3..=4")),
        "{error}"
    );
}
