//! Finds where a value of the typed model was written, by its path in the parsed
//! TOML ("service.1.name"), so that checks on the model can point at the source.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) struct Locator<'a, 'i> {
    source: &'a str,
    root: &'a Spanned<DeTable<'i>>,
}

impl<'a, 'i> Locator<'a, 'i> {
    pub fn new(source: &'a str, root: &'a Spanned<DeTable<'i>>) -> Self {
        Self { source, root }
    }

    /// The value at `path` (dot-separated keys and array indexes), if it was written.
    pub fn find(&self, path: &str) -> Option<Range<usize>> {
        let (span, complete) = self.walk(path);
        complete.then_some(span)
    }

    /// The value at `path`, or the nearest enclosing value that was written (a default
    /// has no place of its own, so the table it would be in stands for it).
    pub fn span(&self, path: &str) -> Range<usize> {
        self.walk(path).0
    }

    /// 1-based line of a span, for hints that refer to another place.
    pub fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            + 1
    }

    /// The source text of `span`.
    pub fn text(&self, span: &Range<usize>) -> Option<&'a str> {
        self.source.get(span.clone())
    }

    /// The part of the value at `span` that reads `needle` as written, if it is written
    /// literally (no escapes in between); lets a hint underline a word in a string.
    pub fn within(&self, span: &Range<usize>, needle: &str) -> Option<Range<usize>> {
        let text = self.source.get(span.clone())?;
        let at = text.find(needle)?;
        Some(span.start + at..span.start + at + needle.len())
    }

    fn walk(&self, path: &str) -> (Range<usize>, bool) {
        let mut span = self.root.span();
        let mut current: Option<&Spanned<DeValue<'i>>> = None;
        for segment in path.split('.') {
            let next = match current {
                None => self.root.get_ref().get(segment),
                Some(value) => match (value.get_ref(), segment.parse::<usize>()) {
                    (DeValue::Array(items), Ok(index)) => items.get(index),
                    (DeValue::Table(table), _) => table.get(segment),
                    _ => None,
                },
            };
            let Some(next) = next else {
                return (span, false);
            };
            span = next.span();
            current = Some(next);
        }
        (span, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "[[service]]\nname = \"a\"\n\n[[service]]\nname = \"b\"\n[service.backend]\nstable = [\"x\", \"y\"]\n";

    #[test]
    fn finds_values_by_key_and_index() {
        let root = DeTable::parse(SOURCE).unwrap();
        let locator = Locator::new(SOURCE, &root);
        let name = locator.find("service.1.name").unwrap();
        assert_eq!(&SOURCE[name.clone()], "\"b\"");
        assert_eq!(locator.line(&name), 5);
        let second = locator.find("service.1.backend.stable.1").unwrap();
        assert_eq!(&SOURCE[second], "\"y\"");
    }

    #[test]
    fn a_missing_value_falls_back_to_its_table() {
        let root = DeTable::parse(SOURCE).unwrap();
        let locator = Locator::new(SOURCE, &root);
        assert_eq!(locator.find("service.1.backend.instances"), None);
        let span = locator.span("service.1.backend.instances");
        assert_eq!(&SOURCE[span], "[service.backend]");
    }
}
