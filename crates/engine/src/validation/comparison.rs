//! The `expect` of a prometheus check: an operator and a number, such as "< 0.01".

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl Operator {
    /// Two-character operators first, so "<=" is not read as "<" followed by "=".
    const ALL: [(&'static str, Operator); 6] = [
        ("<=", Operator::LessOrEqual),
        (">=", Operator::GreaterOrEqual),
        ("==", Operator::Equal),
        ("!=", Operator::NotEqual),
        ("<", Operator::Less),
        (">", Operator::Greater),
    ];

    fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(symbol, _)| symbol)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Comparison {
    operator: Operator,
    threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ComparisonError {
    #[error(
        "`{text}` does not start with a comparison operator; write one of <, <=, >, >=, ==, != followed by a number, such as \"< 0.01\""
    )]
    MissingOperator { text: String },
    #[error("`{number}` in `{text}` is not a number; write a number such as 0.01, 5 or 1e-3")]
    NotANumber { text: String, number: String },
    #[error("`{number}` in `{text}` is not a finite number")]
    NotFinite { text: String, number: String },
}

impl Comparison {
    pub fn parse(text: &str) -> Result<Self, ComparisonError> {
        let trimmed = text.trim();
        let (operator, rest) = Operator::ALL
            .iter()
            .find_map(|(symbol, op)| trimmed.strip_prefix(symbol).map(|rest| (*op, rest)))
            .ok_or_else(|| ComparisonError::MissingOperator { text: text.into() })?;
        let number = rest.trim();
        let threshold: f64 = number.parse().map_err(|_| ComparisonError::NotANumber {
            text: text.into(),
            number: number.into(),
        })?;
        if !threshold.is_finite() {
            return Err(ComparisonError::NotFinite {
                text: text.into(),
                number: number.into(),
            });
        }
        Ok(Self {
            operator,
            threshold,
        })
    }

    /// NaN satisfies no comparison, not even `!=`: a query that yields NaN has no
    /// meaningful value to judge.
    pub fn holds_for(self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        match self.operator {
            Operator::Less => value < self.threshold,
            Operator::LessOrEqual => value <= self.threshold,
            Operator::Greater => value > self.threshold,
            Operator::GreaterOrEqual => value >= self.threshold,
            Operator::Equal => value == self.threshold,
            Operator::NotEqual => value != self.threshold,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.operator.symbol(), self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Comparison {
        Comparison::parse(text).unwrap()
    }

    #[test]
    fn parses_every_operator_with_or_without_spaces() {
        assert!(parse("< 0.01").holds_for(0.005));
        assert!(!parse("< 0.01").holds_for(0.01));
        assert!(parse("<=0.01").holds_for(0.01));
        assert!(parse(" > 5 ").holds_for(6.0));
        assert!(!parse("> 5").holds_for(5.0));
        assert!(parse(">= 5").holds_for(5.0));
        assert!(parse("== 1").holds_for(1.0));
        assert!(!parse("== 1").holds_for(1.5));
        assert!(parse("!= 0").holds_for(2.0));
        assert!(parse("< 1e-3").holds_for(0.0001));
        assert!(parse("> -2").holds_for(-1.0));
    }

    #[test]
    fn nan_satisfies_nothing() {
        for text in ["< 1", "> 1", "!= 1", "== 1"] {
            assert!(!parse(text).holds_for(f64::NAN), "{text}");
        }
    }

    #[test]
    fn displays_in_the_written_form() {
        assert_eq!(parse("<=0.01").to_string(), "<= 0.01");
        assert_eq!(parse("== 1").to_string(), "== 1");
    }

    #[test]
    fn rejects_malformed_text_with_a_reason() {
        assert!(matches!(
            Comparison::parse("0.01"),
            Err(ComparisonError::MissingOperator { .. })
        ));
        assert!(matches!(
            Comparison::parse("=< 1"),
            Err(ComparisonError::MissingOperator { .. })
        ));
        assert!(matches!(
            Comparison::parse("< lots"),
            Err(ComparisonError::NotANumber { .. })
        ));
        assert!(matches!(
            Comparison::parse("<< 1"),
            Err(ComparisonError::NotANumber { .. })
        ));
        assert!(matches!(
            Comparison::parse("<"),
            Err(ComparisonError::NotANumber { .. })
        ));
        assert!(matches!(
            Comparison::parse("> inf"),
            Err(ComparisonError::NotFinite { .. })
        ));
        assert!(matches!(
            Comparison::parse("== NaN"),
            Err(ComparisonError::NotFinite { .. })
        ));
        let message = Comparison::parse("0.01").unwrap_err().to_string();
        assert!(message.contains("\"< 0.01\""), "{message}");
    }
}
