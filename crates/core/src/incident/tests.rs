use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::Timestamp;

#[derive(Default)]
struct Values(HashMap<String, f64>);

impl Values {
    fn set(&mut self, name: &str, value: f64) {
        self.0.insert(name.to_string(), value);
    }
}

impl Readings for Values {
    fn read(&self, metric: MetricRef) -> Option<f64> {
        self.0.get(&metric.to_string()).copied()
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp(secs * 1000)
}

fn compare(expr: &Expr) -> &Comparison {
    match expr {
        Expr::Compare(c) => c,
        other => panic!("not a comparison: {other:?}"),
    }
}

#[test]
fn parses_the_issue_example_with_units_and_for() {
    let c = parse("service.error_rate > 5% for 30s").expect("parses");
    let cmp = compare(&c.expr);
    assert_eq!(cmp.metric.to_string(), "service.error_rate");
    assert_eq!(cmp.op, Op::Gt);
    assert_eq!(cmp.threshold, 5.0);
    // A lone comparison's trailing `for` belongs to the whole condition.
    assert_eq!(c.hold, Duration::from_secs(30));
    assert!(c.is_per_service());
}

#[test]
fn units_convert_to_the_stored_unit() {
    let threshold = |text: &str| compare(&parse(text).expect(text).expr).threshold;
    assert_eq!(threshold("service.latency_p99 > 2s"), 2000.0);
    assert_eq!(threshold("service.latency_p99 > 250ms"), 250.0);
    assert_eq!(threshold("security.failed_auth > 120/min"), 2.0);
    assert_eq!(threshold("service.request_rate < 3/s"), 3.0);
    assert_eq!(
        threshold("host.memory_available < 512MiB"),
        512.0 * 1024.0 * 1024.0
    );
    assert_eq!(threshold("host.disk_available < 2 GB"), 2e9);
    assert_eq!(threshold("host.cpu > 90 %"), 90.0);
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    let c = parse("host.cpu > 90% or host.memory > 95% and host.load > 4").expect("parses");
    match &c.expr {
        Expr::Or(items) => {
            assert_eq!(items.len(), 2);
            assert!(matches!(items[1], Expr::And(_)));
        }
        other => panic!("{other:?}"),
    }
    let c = parse("(host.cpu > 90% or host.memory > 95%) and host.load > 4").expect("parses");
    assert!(matches!(&c.expr, Expr::And(items) if matches!(items[0], Expr::Or(_))));
    assert!(!c.is_per_service());
    assert_eq!(c.comparisons, 3);
}

#[test]
fn a_for_inside_applies_to_its_comparison() {
    let c =
        parse("canary.error_rate > 2% for 10s or canary.latency_p99 > 1s for 1m").expect("parses");
    let Expr::Or(items) = &c.expr else { panic!() };
    assert_eq!(compare(&items[0]).hold, Duration::from_secs(10));
    // The last `for` ends the condition: the whole of it must hold 1m.
    assert_eq!(compare(&items[1]).hold, Duration::ZERO);
    assert_eq!(c.hold, Duration::from_secs(60));
    let c = parse("(canary.latency_p99 > 1s for 1m) and canary.error_rate > 1").expect("parses");
    let Expr::And(items) = &c.expr else { panic!() };
    assert_eq!(compare(&items[0]).hold, Duration::from_secs(60));
}

#[test]
fn a_flag_stands_alone() {
    let c = parse("service.rollout_failed").expect("parses");
    assert_eq!(compare(&c.expr).op, Op::Gt);
    assert!(parse("service.rollout_failed == 1").is_ok());
    assert!(parse("service.rollout_failed == 2").is_err());
}

#[test]
fn errors_point_at_the_word_and_say_what_to_write() {
    let e = parse("service.eror_rate > 5%").expect_err("unknown metric");
    assert_eq!(e.span, 0..17);
    assert_eq!(
        e.help.as_deref(),
        Some("did you mean `service.error_rate`?")
    );

    let text = "service.error_rate > 5ms";
    let e = parse(text).expect_err("wrong unit");
    assert_eq!(&text[e.span.clone()], "ms");
    assert!(e.message.contains("not a unit"), "{e}");

    let text = "service.error_rate > 5% for 30";
    let e = parse(text).expect_err("duration without unit");
    assert!(e.message.contains("unit"), "{e}");

    let text = "service.error_rate 5%";
    let e = parse(text).expect_err("no operator");
    assert_eq!(&text[e.span.clone()], "5");

    let text = "(host.cpu > 90";
    let e = parse(text).expect_err("unclosed");
    assert_eq!(e.message, "expected `)`");

    let text = "host.cpu > 90 host.memory > 1";
    let e = parse(text).expect_err("missing and");
    assert_eq!(&text[e.span.clone()], "host.memory");

    assert!(parse("").is_err());
    assert!(parse("host.cpu => 5").is_err());
    assert!(
        parse("stable.in_flight > 5").is_err(),
        "in_flight is per service only"
    );
    assert!(parse(&"(".repeat(100)).is_err());
}

#[test]
fn for_delays_firing_and_a_break_restarts_the_clock() {
    let c = parse("service.error_rate > 5% for 30s").expect("parses");
    let mut t = Tracker::new(&c);
    let mut v = Values::default();
    let resolve = Duration::from_secs(60);
    v.set("service.error_rate", 9.0);
    assert_eq!(t.step(&c, &v, at(0), resolve), None);
    assert_eq!(t.step(&c, &v, at(29), resolve), None);
    v.set("service.error_rate", 1.0);
    assert_eq!(t.step(&c, &v, at(30), resolve), None);
    v.set("service.error_rate", 9.0);
    assert_eq!(t.step(&c, &v, at(31), resolve), None);
    match t.step(&c, &v, at(61), resolve) {
        Some(Change::Fired(obs)) => {
            assert_eq!(obs[0].shown, "9%");
            assert!(obs[0].holds);
        }
        other => panic!("{other:?}"),
    }
    assert!(t.is_firing());
    assert_eq!(
        t.step(&c, &v, at(62), resolve),
        None,
        "still firing is no change"
    );
}

#[test]
fn resolves_only_after_clear_for_resolve_after_and_counts_repeats() {
    let c = parse("service.error_rate > 5%").expect("parses");
    let mut t = Tracker::new(&c);
    let mut v = Values::default();
    let resolve = Duration::from_secs(60);
    v.set("service.error_rate", 9.0);
    assert!(matches!(
        t.step(&c, &v, at(0), resolve),
        Some(Change::Fired(_))
    ));
    v.set("service.error_rate", 2.0);
    assert_eq!(t.step(&c, &v, at(1), resolve), None);
    assert_eq!(t.step(&c, &v, at(59), resolve), None);
    v.set("service.error_rate", 7.0);
    assert!(matches!(
        t.step(&c, &v, at(60), resolve),
        Some(Change::Repeated(_))
    ));
    v.set("service.error_rate", 2.0);
    assert_eq!(t.step(&c, &v, at(61), resolve), None);
    assert_eq!(t.step(&c, &v, at(120), resolve), None);
    assert_eq!(t.step(&c, &v, at(121), resolve), Some(Change::Resolved));
    assert!(!t.is_firing());
}

#[test]
fn an_unmeasured_metric_does_not_hold() {
    let c = parse("host.cpu > 90% or service.error_rate > 5%").expect("parses");
    let mut t = Tracker::new(&c);
    let v = Values::default();
    assert_eq!(t.step(&c, &v, at(0), Duration::from_secs(1)), None);
    assert_eq!(t.observations()[0].shown, "not measured");
}

#[test]
fn and_needs_both_for_their_own_durations() {
    let c = parse("(host.cpu > 90% for 10s) and (host.memory > 95% for 20s)").expect("parses");
    let mut t = Tracker::new(&c);
    let mut v = Values::default();
    v.set("host.cpu", 95.0);
    v.set("host.memory", 99.0);
    let r = Duration::from_secs(5);
    assert_eq!(t.step(&c, &v, at(0), r), None);
    assert_eq!(t.step(&c, &v, at(10), r), None);
    assert!(matches!(t.step(&c, &v, at(20), r), Some(Change::Fired(_))));
}

#[test]
fn the_defaults_parse() {
    for rule in DEFAULT_RULES {
        parse(rule.when).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
    }
    assert_eq!(
        compare(&parse(DEFAULT_RULES[2].when).expect("parses").expr).threshold,
        100.0 / 60.0
    );
}

#[test]
fn values_and_durations_read_well() {
    assert_eq!(format_value(Dimension::Percent, 9.8), "9.8%");
    assert_eq!(format_value(Dimension::Rate, 2.0), "120/min");
    assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

mod properties {
    use proptest::prelude::*;

    use super::super::parse;

    const WORDS: &[&str] = &[
        "service.error_rate",
        "host.cpu",
        "canary.latency_p99",
        "security.failed_auth",
        "service.rollout_failed",
        "and",
        "or",
        "for",
        "(",
        ")",
        ">",
        ">=",
        "<",
        "==",
        "!=",
        "5",
        "5%",
        "0.5",
        "30s",
        "1m",
        "/min",
        "ms",
        "MiB",
        "%",
        "1e9",
        ".",
        "..",
        "é",
        "=",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_near_misses(words in proptest::collection::vec(0..WORDS.len(), 0..24)) {
            let text = words.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ");
            if let Err(e) = parse(&text) {
                // Spans stay inside the text and on character boundaries.
                prop_assert!(e.span.end <= text.len());
                prop_assert!(text.is_char_boundary(e.span.start) && text.is_char_boundary(e.span.end));
            }
        }
    }
}
