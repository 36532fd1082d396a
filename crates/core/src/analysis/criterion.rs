//! What a metric's value must be for a measurement to pass: a success condition on
//! the canary's value (`result < 0.05`), or a comparison with stable's value from the
//! same query (`lower_is_better` within a tolerance).

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::incident::Op;

/// Longest success condition accepted.
const MAX_LEN: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Criterion {
    /// The canary's value must satisfy the condition.
    Success(SuccessCondition),
    /// The canary's value must not be worse than stable's beyond the tolerance.
    Compare(Comparison),
}

/// `result < 0.05`, `result >= 0.99 and result <= 1`, `result < 1 or result > 5`:
/// comparisons of `result` (the canary's value) with numbers, `and` binding tighter
/// than `or`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SuccessCondition {
    text: String,
    /// Alternatives (`or`), each a conjunction (`and`) of comparisons.
    any: Vec<Vec<(Op, f64)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CriterionError {
    pub message: String,
    /// Byte range in the condition text.
    pub span: Range<usize>,
}

impl SuccessCondition {
    pub fn parse(text: &str) -> Result<Self, CriterionError> {
        if text.len() > MAX_LEN {
            return Err(CriterionError {
                message: format!("the condition is longer than {MAX_LEN} characters"),
                span: 0..text.len(),
            });
        }
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(CriterionError {
                message: "the condition is empty; write e.g. `result < 0.05`".into(),
                span: 0..text.len(),
            });
        }
        let mut any = vec![Vec::new()];
        let mut i = 0;
        loop {
            // result OP number
            let (op, value) = comparison(&tokens, i, text.len())?;
            if let Some(all) = any.last_mut() {
                all.push((op, value));
            }
            i += 3;
            match tokens.get(i) {
                None => break,
                Some((Token::Word(w), _)) if w == "and" => {}
                Some((Token::Word(w), _)) if w == "or" => any.push(Vec::new()),
                Some((_, span)) => {
                    return Err(CriterionError {
                        message: "expected `and` or `or` after a comparison".into(),
                        span: span.clone(),
                    });
                }
            }
            i += 1;
        }
        Ok(Self {
            text: text.to_string(),
            any,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn holds(&self, result: f64) -> bool {
        self.any.iter().any(|all| {
            all.iter()
                .all(|&(op, threshold)| op.holds(result, threshold))
        })
    }
}

impl From<SuccessCondition> for String {
    fn from(c: SuccessCondition) -> String {
        c.text
    }
}

impl TryFrom<String> for SuccessCondition {
    type Error = CriterionError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for SuccessCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(f64),
    Op(Op),
}

fn tokenize(text: &str) -> Result<Vec<(Token, Range<usize>)>, CriterionError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Token::Word(text[start..i].to_string()), start..i));
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' || c == b'+' {
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || bytes[i] == b'.'
                    || bytes[i] == b'e'
                    || bytes[i] == b'E'
                    || ((bytes[i] == b'-' || bytes[i] == b'+')
                        && matches!(bytes[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            let number = text[start..i]
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| CriterionError {
                    message: format!("`{}` is not a number", &text[start..i]),
                    span: start..i,
                })?;
            out.push((Token::Number(number), start..i));
        } else {
            let two = text.get(i..i + 2);
            let (op, len) = match (two, c) {
                (Some(">="), _) => (Op::Ge, 2),
                (Some("<="), _) => (Op::Le, 2),
                (Some("=="), _) => (Op::Eq, 2),
                (Some("!="), _) => (Op::Ne, 2),
                (_, b'>') => (Op::Gt, 1),
                (_, b'<') => (Op::Lt, 1),
                _ => {
                    let end = text[i..]
                        .chars()
                        .next()
                        .map_or(i + 1, |ch| i + ch.len_utf8());
                    return Err(CriterionError {
                        message: format!(
                            "unexpected `{}`; write comparisons such as `result < 0.05`",
                            &text[i..end]
                        ),
                        span: i..end,
                    });
                }
            };
            i += len;
            out.push((Token::Op(op), start..i));
        }
    }
    Ok(out)
}

fn comparison(
    tokens: &[(Token, Range<usize>)],
    i: usize,
    end: usize,
) -> Result<(Op, f64), CriterionError> {
    let missing = |what: &str| CriterionError {
        message: format!("expected {what} at the end of the condition"),
        span: end..end,
    };
    match tokens.get(i) {
        Some((Token::Word(w), _)) if w == "result" => {}
        Some((_, span)) => {
            return Err(CriterionError {
                message: "expected `result` (the canary's value) to start a comparison".into(),
                span: span.clone(),
            });
        }
        None => return Err(missing("`result`")),
    }
    let op = match tokens.get(i + 1) {
        Some((Token::Op(op), _)) => *op,
        Some((_, span)) => {
            return Err(CriterionError {
                message: "expected one of <, <=, >, >=, ==, != after `result`".into(),
                span: span.clone(),
            });
        }
        None => return Err(missing("a comparison operator")),
    };
    match tokens.get(i + 2) {
        Some((Token::Number(n), _)) => Ok((op, *n)),
        Some((_, span)) => Err(CriterionError {
            message: "expected a number to compare `result` with".into(),
            span: span.clone(),
        }),
        None => Err(missing("a number")),
    }
}

/// Which way is better for a compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Error ratios, latencies: the canary may be at most stable's value plus the
    /// tolerance.
    LowerIsBetter,
    /// Success ratios, throughput: the canary may be at most the tolerance below.
    HigherIsBetter,
}

/// The canary's value against stable's from the same query, per measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub direction: Direction,
    /// Percent of stable's value by which the canary may be worse.
    pub tolerance_pct: f64,
    /// An absolute amount by which the canary may always be worse (so a stable value
    /// of 0 does not make any canary value a failure).
    pub tolerance: f64,
}

impl Comparison {
    /// The worst canary value that still passes against `stable`.
    pub fn bound(&self, stable: f64) -> f64 {
        let relative = stable.abs() * self.tolerance_pct / 100.0;
        match self.direction {
            Direction::LowerIsBetter => stable + relative + self.tolerance,
            Direction::HigherIsBetter => stable - relative - self.tolerance,
        }
    }

    pub fn passes(&self, canary: f64, stable: f64) -> bool {
        let bound = self.bound(stable);
        match self.direction {
            Direction::LowerIsBetter => canary <= bound,
            Direction::HigherIsBetter => canary >= bound,
        }
    }
}
