//! Bad input gets an error, never a panic: every prefix of the full example, and the
//! example with each line removed, is either valid or reported with a location.

use rampart_config::parse;

const FULL: &str = include_str!("../../../examples/full.toml");

fn assert_reported(source: &str) {
    if let Err(error) = parse(source, "cut.toml") {
        assert!(
            !error.diagnostics().is_empty(),
            "an invalid config names at least one place"
        );
        for diagnostic in error.diagnostics() {
            assert!(
                diagnostic.line >= 1 && diagnostic.column >= 1,
                "{diagnostic:?}"
            );
            assert!(diagnostic.underline >= 1);
        }
    }
}

#[test]
fn every_prefix_of_the_full_example_is_handled() {
    for (end, _) in FULL.char_indices() {
        assert_reported(&FULL[..end]);
    }
}

#[test]
fn the_full_example_with_any_one_line_removed_is_handled() {
    let lines: Vec<&str> = FULL.lines().collect();
    for skip in 0..lines.len() {
        let source: String = lines
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != skip)
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        assert_reported(&source);
    }
}
