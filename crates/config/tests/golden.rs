//! The exact text a user sees for each kind of config error. Inputs are
//! `golden/<case>.toml`, expected outputs `golden/<case>.txt`; run with
//! `UPDATE_GOLDEN=1` to rewrite the expected outputs after an intended change.

use std::fs;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check_golden(case: &str) {
    let dir = golden_dir();
    let input_name = format!("{case}.toml");
    let source = fs::read_to_string(dir.join(&input_name)).expect("golden input exists");
    let error = match rampart_config::parse(&source, &input_name) {
        Ok(_) => panic!("{input_name} is meant to be invalid but loaded"),
        Err(error) => error,
    };
    let actual = format!("{error}\n");
    let expected_path = dir.join(format!("{case}.txt"));
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        fs::write(&expected_path, &actual).expect("write golden output");
        return;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with UPDATE_GOLDEN=1 to create it",
            expected_path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "\n--- actual ---\n{actual}--- expected ({}) ---\n{expected}",
        expected_path.display()
    );
}

macro_rules! golden_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                check_golden(stringify!($case));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

golden_cases!(
    bad_incident_condition,
    bad_analysis_metric,
    bad_upstream_address,
    toml_syntax_error,
    unquoted_text,
    unknown_key_suggestion,
    unknown_key_no_match,
    unknown_backend_kind,
    unknown_check_kind,
    missing_backend_kind,
    wrong_type,
    service_as_table,
    bad_duration,
    zero_duration,
    negative_duration,
    duration_too_long,
    invalid_initial_version,
    api_listens_beyond_loopback,
    missing_required_key,
    several_structure_errors,
    duplicate_service_name,
    listen_clash,
    listen_clash_with_server,
    weight_out_of_range,
    weights_not_increasing,
    invalid_service_name,
    process_command_without_port,
    upstream_loops_back,
    several_semantic_errors,
    structure_and_meaning_errors,
    bad_version_header_from,
    version_header_without_networks,
    router_timeout_too_long,
    notifier_key_of_another_kind,
    unknown_notifier_reference,
    bad_steering_steps,
    blue_green_keys,
    step_gate_errors,
    hook_key_of_another_kind,
);

#[test]
fn every_golden_input_has_a_test() {
    for entry in fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            assert!(
                CASES.contains(&stem),
                "{} has no golden test",
                path.display()
            );
        }
    }
}

#[test]
fn golden_outputs_are_plain_text() {
    for case in CASES {
        let output =
            fs::read_to_string(golden_dir().join(format!("{case}.txt"))).unwrap_or_default();
        assert!(
            !output.contains('\u{1b}'),
            "{case}.txt contains an ANSI escape"
        );
    }
}
