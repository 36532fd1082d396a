//! What a user sees when a config is wrong: every problem with its file, line, column,
//! the offending line and a hint, rendered as plain text in the style of rustc.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem in a config file, located in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to `load` or the origin given to `parse`.
    pub file: String,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// What is wrong, in one line.
    pub message: String,
    /// The source line the problem is on.
    pub snippet: String,
    /// How many characters of `snippet`, from `column` on, are underlined (at least 1).
    pub underline: usize,
    /// A few words written after the underline; may be empty.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line_number = self.line.to_string();
        let gutter = " ".repeat(line_number.len() + 1);
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{gutter}--> {}:{}:{}", self.file, self.line, self.column)?;
        writeln!(f, "{gutter} |")?;
        let (shown, caret_start, caret_len) =
            expand_tabs(&self.snippet, self.column, self.underline);
        writeln!(f, " {line_number} | {shown}")?;
        let carets = "^".repeat(caret_len);
        let padding = " ".repeat(caret_start);
        if self.label.is_empty() {
            write!(f, "{gutter} | {padding}{carets}")?;
        } else {
            write!(f, "{gutter} | {padding}{carets} {}", self.label)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{gutter} = help: {help}")?;
        }
        Ok(())
    }
}

/// Replaces tabs so that the underline lines up with the text above it; returns the
/// shown line and the underline's start and length in columns.
fn expand_tabs(snippet: &str, column: usize, underline: usize) -> (String, usize, usize) {
    const TAB: &str = "    ";
    let mut shown = String::with_capacity(snippet.len());
    let mut start = None;
    let mut end = None;
    for (index, ch) in snippet.chars().enumerate() {
        if index + 1 == column {
            start = Some(shown.chars().count());
        }
        if index + 1 == column + underline {
            end = Some(shown.chars().count());
        }
        if ch == '\t' {
            shown.push_str(TAB);
        } else {
            shown.push(ch);
        }
    }
    let width = shown.chars().count();
    let start = start.unwrap_or(width);
    let end = end.unwrap_or(width.max(start + 1));
    (shown, start, end.saturating_sub(start).max(1))
}

/// A config that could not be read or is not valid. `Display` is the full report a
/// user should see (plain text, no colours).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The OS error is part of the message and deliberately not a `source`: printers
    // that walk the chain would show it twice.
    #[error("error: cannot read config file `{}`: {io}", path.display())]
    Read { path: PathBuf, io: std::io::Error },
    /// Every problem found; syntax errors stop parsing, so there is one of those at most.
    #[error("{}", render(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
}

impl ConfigError {
    /// The located problems; empty when the file could not be read at all.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { diagnostics } => diagnostics,
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n\n");
    if let [first, _, ..] = diagnostics {
        out.push_str(&format!(
            "\n\nerror: {} has {} errors",
            first.file,
            diagnostics.len()
        ));
    }
    out
}

/// A problem found by a check, located by byte offsets into the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub span: Range<usize>,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl Finding {
    pub fn new(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

/// Turns byte offsets into lines and columns of one source text.
pub(crate) struct SourceMap<'a> {
    file: &'a str,
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a str, source: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self {
            file,
            source,
            line_starts,
        }
    }

    /// Locates findings, ordered by where they are in the file.
    pub fn diagnose(&self, mut findings: Vec<Finding>) -> ConfigError {
        findings.sort_by_key(|finding| (finding.span.start, finding.span.end));
        findings.dedup();
        ConfigError::Invalid {
            diagnostics: findings.into_iter().map(|f| self.locate(f)).collect(),
        }
    }

    pub fn locate(&self, finding: Finding) -> Diagnostic {
        let start = clamp_to_char_boundary(self.source, finding.span.start);
        let line_index = self
            .line_starts
            .partition_point(|&line_start| line_start <= start)
            .saturating_sub(1);
        let line_start = self.line_starts[line_index];
        let line_end = self.source[line_start..]
            .find('\n')
            .map_or(self.source.len(), |at| line_start + at);
        let snippet = self.source[line_start..line_end].trim_end_matches('\r');
        let column = self.source[line_start..start].chars().count() + 1;
        let end = clamp_to_char_boundary(self.source, finding.span.end.clamp(start, line_end));
        let underline = self.source[start..end]
            .trim_end_matches('\r')
            .chars()
            .count()
            .max(1);
        Diagnostic {
            file: self.file.to_string(),
            line: line_index + 1,
            column,
            message: finding.message,
            snippet: snippet.to_string(),
            underline,
            label: finding.label,
            help: finding.help,
        }
    }
}

fn clamp_to_char_boundary(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_line_column_and_underline_in_characters() {
        let source = "a = 1\nnäme = \"x\"\n";
        let map = SourceMap::new("f.toml", source);
        let start = source.find("\"x\"").unwrap();
        let diagnostic = map.locate(Finding::new(start..start + 3, "m", "l"));
        assert_eq!((diagnostic.line, diagnostic.column), (2, 8));
        assert_eq!(diagnostic.snippet, "näme = \"x\"");
        assert_eq!(diagnostic.underline, 3);
    }

    #[test]
    fn underline_stops_at_the_end_of_the_first_line() {
        let source = "steps = [\n  1,\n]\n";
        let map = SourceMap::new("f.toml", source);
        let diagnostic = map.locate(Finding::new(8..source.len(), "m", ""));
        assert_eq!(
            (diagnostic.line, diagnostic.column, diagnostic.underline),
            (1, 9, 1)
        );
    }

    #[test]
    fn renders_like_rustc_with_tabs_expanded() {
        let diagnostic = Diagnostic {
            file: "rampart.toml".into(),
            line: 2,
            column: 2,
            message: "unknown key `lisen` in [server]".into(),
            snippet: "\tlisen = 1".into(),
            underline: 5,
            label: "unknown key".into(),
            help: Some("did you mean `listen`?".into()),
        };
        assert_eq!(
            diagnostic.to_string(),
            "error: unknown key `lisen` in [server]\n  --> rampart.toml:2:2\n   |\n 2 |     lisen = 1\n   |     ^^^^^ unknown key\n   = help: did you mean `listen`?"
        );
    }

    #[test]
    fn a_span_at_the_end_of_the_source_points_past_the_last_character() {
        let source = "[server";
        let map = SourceMap::new("f.toml", source);
        let diagnostic = map.locate(Finding::new(7..7, "m", ""));
        assert_eq!(
            (diagnostic.line, diagnostic.column, diagnostic.underline),
            (1, 8, 1)
        );
        assert!(
            diagnostic
                .to_string()
                .contains(" 1 | [server\n   |        ^")
        );
    }
}
