//! Every shipped example loads, and the smallest configs are valid.

use std::path::{Path, PathBuf};

use rampart_config::{BackendConfig, CheckKind, Config, load, parse};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_loads() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples folder") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            if let Err(error) = load(&path) {
                panic!("{} does not load:\n{error}", path.display());
            }
            loaded += 1;
        }
    }
    assert!(
        loaded >= 3,
        "expected quickstart, process and full examples"
    );
}

#[test]
fn quickstart_is_a_static_service_that_needs_nothing_else() {
    let config = load(&examples_dir().join("quickstart.toml")).expect("quickstart loads");
    assert_eq!(config.server.listen, "127.0.0.1:7070".parse().unwrap());
    assert!(config.server.data_dir.ends_with("examples/quickstart-data"));
    let web = config.service("web").expect("service web");
    match &web.backend {
        BackendConfig::Static(upstreams) => {
            assert_eq!(
                upstreams.stable,
                vec![rampart_config::UpstreamAddress::Ip(
                    "127.0.0.1:9001".parse().unwrap()
                )]
            );
        }
        other => panic!("quickstart must not start processes, got {other:?}"),
    }
}

#[test]
fn process_example_runs_the_sample_app_on_the_chosen_port() {
    let config = load(&examples_dir().join("process.toml")).expect("process example loads");
    let BackendConfig::Process(process) = &config.services[0].backend else {
        panic!("process example has a process backend");
    };
    assert_eq!(
        process.command,
        "{rampart} sample-app --listen 127.0.0.1:{port} --version {version}"
    );
}

#[test]
fn each_runnable_example_keeps_its_own_data_dir() {
    let data_dir = |name: &str| {
        load(&examples_dir().join(name))
            .expect("example loads")
            .server
            .data_dir
    };
    assert_ne!(data_dir("quickstart.toml"), data_dir("process.toml"));
}

#[test]
fn full_example_sets_every_check_kind_and_both_backends() {
    let config = load(&examples_dir().join("full.toml")).expect("full example loads");
    let kinds: Vec<&str> = config
        .services
        .iter()
        .flat_map(|service| service.checks.iter().map(|check| check.kind.name()))
        .collect();
    assert_eq!(kinds, ["command", "http", "tcp", "prometheus"]);
    let backends: Vec<&str> = config
        .services
        .iter()
        .map(|s| s.backend.kind_name())
        .collect();
    assert_eq!(backends, ["process", "static"]);
    let smoke = &config.services[0].checks[1];
    assert!(!smoke.critical);
    assert_eq!(smoke.retries, 2);
    assert!(matches!(
        &smoke.kind,
        CheckKind::Http { expect_status: 200, body_contains: Some(body), .. } if body == "ok"
    ));
}

#[test]
fn an_empty_file_is_the_default_config() {
    let config = parse("", "empty.toml").expect("empty config is valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.server.listen, "127.0.0.1:7070".parse().unwrap());
    assert!(config.services.is_empty());
}

#[test]
fn a_server_only_config_is_valid() {
    let config = parse(
        "[server]\nlisten = \"127.0.0.1:9090\"\ndata_dir = \"/var/lib/rampart\"\non_restart = \"resume\"\n",
        "server.toml",
    )
    .expect("server-only config is valid");
    assert_eq!(config.server.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(config.server.data_dir, Path::new("/var/lib/rampart"));
    assert!(config.services.is_empty());
}
