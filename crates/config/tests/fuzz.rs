//! The config's fuzz suite, as property tests (no nightly toolchain for cargo-fuzz):
//! arbitrary bytes, and the shipped examples mutated along their structure, are
//! either a valid config or reported with a place in the file; never a panic. The
//! duration and version parsers get arbitrary text too.
//!
//! The CI form runs a few thousand cases in seconds; `RAMPART_FUZZ_CASES=200000`
//! (or any number) makes a long fuzzing run of every property here.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rampart_config::duration::{self, MAX_DURATION};
use rampart_config::parse;

const EXAMPLES: [&str; 3] = [
    include_str!("../../../examples/full.toml"),
    include_str!("../../../examples/process.toml"),
    include_str!("../../../examples/quickstart.toml"),
];

/// `ci` cases unless `RAMPART_FUZZ_CASES` asks for another number.
fn cases(ci: u32) -> ProptestConfig {
    let cases = std::env::var("RAMPART_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ci);
    ProptestConfig {
        cases,
        // Mutated configs are rejected early by design; that is not a failure to
        // generate input.
        max_global_rejects: cases.saturating_mul(4),
        ..ProptestConfig::default()
    }
}

/// Parses `source` and checks the outcome: valid, or every diagnostic points at a
/// line that exists (or the line just past the end, for "missing" problems).
fn assert_valid_or_located(source: &str) -> Result<(), TestCaseError> {
    let Err(error) = parse(source, "fuzz.toml") else {
        return Ok(());
    };
    let lines = source.lines().count().max(1);
    prop_assert!(
        !error.diagnostics().is_empty(),
        "an invalid config names at least one place"
    );
    for diagnostic in error.diagnostics() {
        prop_assert!(
            diagnostic.line >= 1 && diagnostic.line <= lines + 1,
            "line {} of {lines}: {diagnostic:?}",
            diagnostic.line
        );
        prop_assert!(diagnostic.column >= 1, "{diagnostic:?}");
        prop_assert!(diagnostic.underline >= 1, "{diagnostic:?}");
        prop_assert!(!diagnostic.message.is_empty(), "{diagnostic:?}");
    }
    // The rendered report is what a user reads; it must not panic either.
    prop_assert!(!error.to_string().is_empty());
    Ok(())
}

/// Values that stress each kind of setting: wrong types, edges of ranges, overlong
/// and odd text, durations at and past their bound, addresses that do not parse.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"\"".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[[]]".to_string()),
        Just("{}".to_string()),
        Just("{ weight = 101, hold = \"0s\" }".to_string()),
        Just("\"30d 1s\"".to_string()),
        Just("\"18446744073709551615s\"".to_string()),
        Just("\"-5s\"".to_string()),
        Just("\"0ms\"".to_string()),
        Just("\"..\"".to_string()),
        Just("\"--help\"".to_string()),
        Just("\"127.0.0.1:99999\"".to_string()),
        Just("\"[::1]:0\"".to_string()),
        Just("\"0.0.0.0:7070\"".to_string()),
        Just("\"http://\"".to_string()),
        Just("\"{version} {port} {nope}\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-z0-9 .:/{}_-]{0,40}".prop_map(|s| format!("{s:?}")),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

/// One structural edit of a config, addressed by indexes that are taken modulo the
/// size of what they index when applied.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replaces the value of the n-th `key = value` line.
    ReplaceValue(usize, String),
    /// Renames the key of the n-th `key = value` line to another key of the file.
    RenameKey(usize, usize),
    /// Inserts a raw line (which may be a table header or junk).
    InsertLine(usize, String),
    /// Cuts the text at a byte (rounded down to a character boundary).
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = prop_oneof![
        Just("[[service]]".to_string()),
        Just("[service.backend]".to_string()),
        Just("[server]".to_string()),
        Just("[[service.check]]".to_string()),
        Just("[service.router]".to_string()),
        Just("kind = \"kubernetes\"".to_string()),
        Just("name = \"web\"".to_string()),
        Just("listen = \"127.0.0.1:7070\"".to_string()),
        "[a-z_]{1,20} = [0-9]{1,5}".prop_map(|s| s),
        any::<String>(),
    ];
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        3 => (any::<usize>(), hostile_value()).prop_map(|(n, v)| Mutation::ReplaceValue(n, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::RenameKey(a, b)),
        1 => (any::<usize>(), line).prop_map(|(n, l)| Mutation::InsertLine(n, l)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// The index of each line that assigns a value (`key = value`, not a comment).
fn assignments(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.starts_with('#') && !t.starts_with('[') && t.contains('=')
        })
        .map(|(i, _)| i)
        .collect()
}

fn apply(source: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            Mutation::ReplaceValue(i, value) => {
                let targets = assignments(&lines);
                if let Some(&at) = targets.get(i % targets.len().max(1)) {
                    let key = lines[at].split('=').next().unwrap_or("").to_string();
                    lines[at] = format!("{key}= {value}");
                }
            }
            Mutation::RenameKey(i, j) => {
                let targets = assignments(&lines);
                if targets.is_empty() {
                    continue;
                }
                let at = targets[i % targets.len()];
                let from = targets[j % targets.len()];
                let key = lines[from].split('=').next().unwrap_or("").to_string();
                let value = lines[at].split_once('=').map(|(_, v)| v).unwrap_or("");
                lines[at] = format!("{key}={value}");
            }
            Mutation::InsertLine(i, line) => lines.insert(i % (n + 1), line.clone()),
            Mutation::Truncate(at) => {
                let text = lines.join("\n");
                let mut end = at % (text.len() + 1);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                lines = text[..end].lines().map(str::to_string).collect();
            }
        }
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn arbitrary_bytes_are_reported_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_valid_or_located(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn toml_shaped_text_is_reported_never_a_panic(text in "(\\[{1,2}[a-z.]{0,12}\\]{1,2}\n|[a-z_]{1,12} = (\"[^\"\n]{0,16}\"|[0-9.-]{1,8}|\\[[^\n]{0,16}\\]|\\{[^\n]{0,16}\\})\n|#[^\n]{0,10}\n){0,24}") {
        assert_valid_or_located(&text)?;
    }
}

proptest! {
    #![proptest_config(cases(3_000))]

    #[test]
    fn mutated_examples_are_valid_or_located(
        example in 0..EXAMPLES.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        assert_valid_or_located(&apply(EXAMPLES[example], &mutations))?;
    }
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn any_duration_text_parses_within_bounds_or_is_refused(text in any::<String>()) {
        match duration::parse(&text) {
            Ok(d) => {
                prop_assert!(!d.get().is_zero() && d.get() <= MAX_DURATION, "{text:?} -> {d:?}");
                // What rampart writes back (status, config summaries) reads the same.
                prop_assert_eq!(duration::parse(&d.to_string()), Ok(d));
            }
            Err(e) => prop_assert!(e.to_string().contains("invalid duration"), "{e}"),
        }
    }

    #[test]
    fn numbers_with_units_are_bounded(n in any::<u64>(), unit in prop_oneof![
        Just("ns"), Just("us"), Just("ms"), Just("s"), Just("m"), Just("h"), Just("d"), Just("w"), Just("y")
    ], spaces in " {0,2}") {
        let text = format!("{spaces}{n}{unit}{spaces}");
        match duration::parse(&text) {
            Ok(d) => prop_assert!(!d.get().is_zero() && d.get() <= MAX_DURATION, "{text:?} -> {d:?}"),
            Err(e) => prop_assert!(!e.reason().is_empty()),
        }
    }

    #[test]
    fn versions_that_pass_are_safe_as_file_names_and_arguments(version in prop_oneof![
        any::<String>(),
        "[-./\\\\a-z0-9+_ ]{0,8}",
        Just("..".to_string()),
        Just("--help".to_string()),
    ]) {
        if rampart_core::version::check_version(&version).is_ok() {
            prop_assert!(!version.is_empty() && version.len() <= 128);
            prop_assert!(version != "." && version != "..");
            prop_assert!(!version.starts_with('-'));
            prop_assert!(version.chars().all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c)));
        }
    }
}
