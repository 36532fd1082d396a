//! The condition language of incident rules, parsed once at start:
//!
//! ```text
//! service.error_rate > 5% for 30s
//! host.cpu > 90% and host.memory > 95% for 1m
//! (canary.latency_p99 > 800ms for 1m or canary.error_rate > 2%) and service.request_rate > 1/s
//! security.failed_auth > 100/min
//! service.rollout_failed
//! ```
//!
//! `and` binds tighter than `or`; parentheses group. A `for` after a comparison asks
//! for it to hold that long without a break; a `for` at the very end applies to the
//! whole condition. Errors carry the byte range in the condition text, so the config
//! can underline the exact word.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use super::metric::{Dimension, MetricRef, unit_factor};

/// Longest condition accepted; anything longer is surely a mistake.
pub const MAX_CONDITION_LEN: usize = 2000;
/// Deepest parenthesis nesting accepted (keeps recursion bounded on any input).
const MAX_DEPTH: usize = 16;
/// Longest `for`: 30 days, like every other duration in the config.
const MAX_HOLD: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
}

/// One `metric op value [for duration]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub metric: MetricRef,
    pub op: Op,
    /// In the metric's stored unit (percent, ms, per second, bytes).
    pub threshold: f64,
    /// The threshold as written ("5%", "100/min"), for messages.
    pub written: String,
    /// How long it must hold without a break; zero for at once.
    pub hold: Duration,
    /// Position among the condition's comparisons (the evaluator's slot).
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    Compare(Comparison),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub expr: Expr,
    /// A trailing `for`: how long the whole condition must hold.
    pub hold: Duration,
    pub comparisons: usize,
    pub text: String,
}

impl Condition {
    /// Whether any comparison is about a service (so the rule runs once per service).
    pub fn is_per_service(&self) -> bool {
        self.metrics().iter().any(|m| m.subject.is_per_service())
    }

    pub fn metrics(&self) -> Vec<MetricRef> {
        fn walk(expr: &Expr, out: &mut Vec<MetricRef>) {
            match expr {
                Expr::Compare(c) => out.push(c.metric),
                Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| walk(e, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a condition does not parse, at `span` (bytes of the condition text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub span: Range<usize>,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.span.start)?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConditionError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Number(f64),
    Percent,
    PerUnit(String),
    Op(Op),
    Open,
    Close,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Range<usize>,
}

fn error(
    span: Range<usize>,
    message: impl Into<String>,
    label: impl Into<String>,
) -> ConditionError {
    ConditionError {
        span,
        message: message.into(),
        label: label.into(),
        help: None,
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ConditionError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let tok = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'%' => {
                i += 1;
                Tok::Percent
            }
            b'>' | b'<' | b'=' | b'!' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                let op = match (b, two) {
                    (b'>', true) => Op::Ge,
                    (b'>', false) => Op::Gt,
                    (b'<', true) => Op::Le,
                    (b'<', false) => Op::Lt,
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    _ => {
                        return Err(error(
                            start..i + 1,
                            format!("`{}` is not a comparison", b as char),
                            "not a comparison",
                        )
                        .with_help("compare with >, >=, <, <=, == or !="));
                    }
                };
                i += if two { 2 } else { 1 };
                Tok::Op(op)
            }
            b'/' => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                Tok::PerUnit(text[start + 1..i].to_string())
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let number = &text[start..i];
                match number.parse::<f64>() {
                    Ok(n) if n.is_finite() => Tok::Number(n),
                    _ => {
                        return Err(error(
                            start..i,
                            format!("`{number}` is not a number"),
                            "not a number",
                        ));
                    }
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                Tok::Word(text[start..i].to_string())
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                let end = start + ch.len_utf8();
                return Err(error(
                    start..end,
                    format!("unexpected `{ch}`"),
                    "not part of a condition",
                )
                .with_help("write `metric > value [for duration]`, joined with `and`/`or`"));
            }
        };
        tokens.push(Token {
            tok,
            span: start..i,
        });
    }
    tokens.push(Token {
        tok: Tok::End,
        span: text.len()..text.len(),
    });
    Ok(tokens)
}

impl ConditionError {
    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    comparisons: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.at + ahead).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w == word)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and(depth)?];
        while self.is_word("or") {
            self.next();
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let mut items = vec![self.primary(depth)?];
        while self.is_word("and") {
            self.next();
            items.push(self.primary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, ConditionError> {
        let token = self.peek().clone();
        match &token.tok {
            Tok::Open => {
                if depth >= MAX_DEPTH {
                    return Err(
                        error(token.span, "parentheses nested too deeply", "too deep")
                            .with_help(format!("nest at most {MAX_DEPTH} levels")),
                    );
                }
                self.next();
                let inner = self.or(depth + 1)?;
                let close = self.next();
                if close.tok != Tok::Close {
                    return Err(error(close.span, "expected `)`", "`(` is not closed")
                        .with_help(format!("close the `(` at byte {}", token.span.start)));
                }
                Ok(inner)
            }
            Tok::Word(word) => {
                let word = word.clone();
                self.next();
                self.comparison(&word, token.span, depth)
            }
            Tok::End => Err(error(
                token.span,
                "the condition ends too early",
                "expected a metric",
            )
            .with_help("write `metric > value`, such as `service.error_rate > 5%`")),
            _ => Err(
                error(token.span, "expected a metric", "not a metric").with_help(format!(
                    "metrics are: {}",
                    MetricRef::all_names().join(", ")
                )),
            ),
        }
    }

    fn comparison(
        &mut self,
        name: &str,
        span: Range<usize>,
        depth: usize,
    ) -> Result<Expr, ConditionError> {
        let (subject, metric_name) = name.split_once('.').unwrap_or(("", name));
        let Some((metric, dimension)) = MetricRef::lookup(subject, metric_name) else {
            let names = MetricRef::all_names();
            let help = match closest_name(name, &names) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("metrics are: {}", names.join(", ")),
            };
            return Err(
                error(span, format!("unknown metric `{name}`"), "not a metric").with_help(help),
            );
        };
        let index = self.comparisons;
        self.comparisons += 1;
        let op_token = self.peek().clone();
        let (op, threshold, written) = match op_token.tok {
            Tok::Op(op) => {
                self.next();
                let (value, written) = self.value(dimension, metric)?;
                (op, value, written)
            }
            _ if dimension == Dimension::Flag => (Op::Gt, 0.0, "0".into()),
            _ => {
                return Err(error(
                    op_token.span,
                    format!("expected a comparison after `{name}`"),
                    "expected >, >=, <, <=, == or !=",
                )
                .with_help(format!("for example `{name} > 10`")));
            }
        };
        let hold = if self.is_word("for") && !(depth == 0 && self.for_ends_condition()) {
            self.next();
            self.duration()?
        } else {
            Duration::ZERO
        };
        Ok(Expr::Compare(Comparison {
            metric,
            op,
            threshold,
            written,
            hold,
            index,
        }))
    }

    /// Whether the `for` ahead is the last thing in the condition (then it belongs to
    /// the whole condition, not to the comparison before it).
    fn for_ends_condition(&self) -> bool {
        let mut ahead = 1;
        if matches!(self.peek_at(ahead), Tok::Number(_)) {
            ahead += 1;
            if matches!(self.peek_at(ahead), Tok::Word(_)) {
                ahead += 1;
            }
        }
        matches!(self.peek_at(ahead), Tok::End)
    }

    fn value(
        &mut self,
        dimension: Dimension,
        metric: MetricRef,
    ) -> Result<(f64, String), ConditionError> {
        let token = self.next();
        let Tok::Number(number) = token.tok else {
            return Err(
                error(token.span, "expected a number", "not a number").with_help(format!(
                    "`{metric}` takes a number with {}",
                    dimension.units()
                )),
            );
        };
        let unit_token = self.peek().clone();
        let unit = match &unit_token.tok {
            Tok::Percent => Some("%".to_string()),
            Tok::PerUnit(u) => Some(format!("/{u}")),
            Tok::Word(w) if !matches!(w.as_str(), "and" | "or" | "for") => Some(w.clone()),
            _ => None,
        };
        if unit.is_some() {
            self.next();
        }
        let unit_text = unit.unwrap_or_default();
        let Some(factor) = unit_factor(dimension, &unit_text) else {
            return Err(error(
                unit_token.span,
                format!("`{unit_text}` is not a unit of `{metric}`"),
                "wrong unit",
            )
            .with_help(format!("`{metric}` takes {}", dimension.units())));
        };
        if dimension == Dimension::Flag && !(number == 0.0 || number == 1.0) {
            return Err(
                error(token.span, format!("`{metric}` is 0 or 1"), "not 0 or 1")
                    .with_help(format!("write `{metric}` alone, or compare it with 0 or 1")),
            );
        }
        let written = format!("{number}{unit_text}");
        Ok((number * factor, written))
    }

    fn duration(&mut self) -> Result<Duration, ConditionError> {
        let token = self.next();
        let Tok::Number(number) = token.tok else {
            return Err(error(
                token.span,
                "expected a duration after `for`",
                "not a duration",
            )
            .with_help("write a number with a unit, such as `30s`, `5m` or `1h`"));
        };
        let unit = self.next();
        let factor = match &unit.tok {
            Tok::Word(w) => match w.as_str() {
                "ms" => 0.001,
                "s" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => 0.0,
            },
            _ => 0.0,
        };
        let span = token.span.start..unit.span.end;
        if factor == 0.0 {
            return Err(error(
                unit.span,
                "a duration needs a unit",
                "expected ms, s, m or h",
            )
            .with_help("write a number with a unit, such as `30s`, `5m` or `1h`"));
        }
        let secs = number * factor;
        if secs > MAX_HOLD.as_secs_f64() {
            return Err(error(span, "durations are at most 30 days", "too long"));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

fn closest_name<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    // Edit distance, small enough here not to need a crate (core stays dependency-free).
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let current = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(row[j + 1] + 1);
                previous = current;
            }
        }
        row[b.len()]
    }
    names
        .iter()
        .map(|n| (distance(name, n), n.as_str()))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Parses a condition; errors point into `text`.
pub fn parse(text: &str) -> Result<Condition, ConditionError> {
    if text.len() > MAX_CONDITION_LEN {
        return Err(
            error(0..text.len(), "the condition is too long", "too long").with_help(format!(
                "at most {MAX_CONDITION_LEN} characters; split it into several rules"
            )),
        );
    }
    if text.trim().is_empty() {
        return Err(error(0..text.len(), "the condition is empty", "empty")
            .with_help("write `metric > value`, such as `service.error_rate > 5% for 30s`"));
    }
    let mut parser = Parser {
        tokens: lex(text)?,
        at: 0,
        comparisons: 0,
    };
    let expr = parser.or(0)?;
    let hold = if parser.is_word("for") {
        parser.next();
        parser.duration()?
    } else {
        Duration::ZERO
    };
    let end = parser.next();
    if end.tok != Tok::End {
        let help = if end.tok == Tok::Close {
            "this `)` has no `(`".to_string()
        } else {
            "join comparisons with `and` or `or`".to_string()
        };
        return Err(error(
            end.span,
            "unexpected text after a complete comparison",
            "expected `and`, `or`, `for` or the end",
        )
        .with_help(help));
    }
    Ok(Condition {
        expr,
        hold,
        comparisons: parser.comparisons,
        text: text.to_string(),
    })
}
