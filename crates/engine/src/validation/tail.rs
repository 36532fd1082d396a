//! Bounded capture of a check's output: the last bytes are the ones that explain a
//! failure, so the beginning is dropped first.

use std::collections::VecDeque;

/// At most this much of a check's output is kept.
pub(crate) const OUTPUT_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Tail {
    limit: usize,
    kept: VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.kept.extend(bytes);
        let excess = self.kept.len().saturating_sub(self.limit);
        if excess > 0 {
            self.kept.drain(..excess);
            self.dropped = self.dropped.saturating_add(excess as u64);
        }
    }

    /// The kept output as text (invalid UTF-8 replaced), with a note when the beginning
    /// was dropped; `None` when there was no output.
    pub fn into_text(self) -> Option<String> {
        if self.kept.is_empty() && self.dropped == 0 {
            return None;
        }
        let kept: Vec<u8> = self.kept.into();
        let text = String::from_utf8_lossy(&kept);
        if self.dropped == 0 {
            Some(text.into_owned())
        } else {
            Some(format!("[{} earlier bytes not kept]\n{text}", self.dropped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_limit() {
        let mut tail = Tail::new(10);
        tail.push(b"abc");
        tail.push(b"def");
        assert_eq!(tail.into_text().as_deref(), Some("abcdef"));
    }

    #[test]
    fn keeps_the_last_bytes_and_says_how_many_were_dropped() {
        let mut tail = Tail::new(4);
        tail.push(b"abc");
        tail.push(b"defgh");
        assert_eq!(
            tail.into_text().as_deref(),
            Some("[4 earlier bytes not kept]\nefgh")
        );
    }

    #[test]
    fn no_output_is_none() {
        assert_eq!(Tail::new(4).into_text(), None);
    }
}
