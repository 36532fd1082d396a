//! "Did you mean …?": the closest valid name to a typo, if one is close enough.

/// The candidate nearest to `typed`, or `None` when nothing is plausibly what was meant.
///
/// Jaro-Winkler catches transpositions and shared prefixes (`lisen` → `listen`); the
/// edit distance catches short names and separator mix-ups (`data-dir` → `data_dir`).
pub(crate) fn closest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let typed = typed.to_ascii_lowercase();
    candidates
        .iter()
        .filter_map(|&candidate| {
            let similarity = strsim::jaro_winkler(&typed, candidate);
            let edits = strsim::damerau_levenshtein(&typed, candidate);
            let close_by_edits = edits <= (candidate.len() / 4).max(1);
            (similarity >= 0.85 || close_by_edits).then_some((candidate, similarity, edits))
        })
        .min_by(|a, b| a.2.cmp(&b.2).then(b.1.total_cmp(&a.1)))
        .map(|(candidate, _, _)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    const SERVER_KEYS: &[&str] = &["listen", "data_dir", "on_restart"];

    #[test]
    fn suggests_the_key_a_typo_was_meant_to_be() {
        assert_eq!(closest("lisen", SERVER_KEYS), Some("listen"));
        assert_eq!(closest("data-dir", SERVER_KEYS), Some("data_dir"));
        assert_eq!(closest("Listen", SERVER_KEYS), Some("listen"));
        assert_eq!(closest("proccess", &["process", "static"]), Some("process"));
        assert_eq!(closest("statc", &["process", "static"]), Some("static"));
    }

    #[test]
    fn suggests_nothing_for_unrelated_names() {
        assert_eq!(closest("colour", SERVER_KEYS), None);
        assert_eq!(closest("x", SERVER_KEYS), None);
        assert_eq!(closest("kubernetes", &["process", "static"]), None);
    }
}
