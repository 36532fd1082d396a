//! Turns a TOML syntax error into a finding, adding a hint for the usual slips:
//! unquoted text and keys set twice.

use toml::de::Error;

use crate::diagnostic::Finding;

pub(crate) fn finding(source: &str, error: &Error) -> Finding {
    let span = error.span().unwrap_or(0..0);
    let message = error.message();
    let help = if message.starts_with("duplicate key") {
        source
            .get(span.clone())
            .filter(|key| !key.trim().is_empty())
            .map(|key| format!("`{key}` is already set in this table; a key may appear only once"))
    } else {
        unquoted_text_hint(line_at(source, span.start))
    };
    Finding::new(span, format!("invalid TOML: {message}"), "").maybe_help(help)
}

fn line_at(source: &str, offset: usize) -> &str {
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |at| at + 1);
    let end = source[offset..]
        .find('\n')
        .map_or(source.len(), |at| offset + at);
    source[start..end].trim_end_matches('\r')
}

/// `listen = 127.0.0.1:7070` or `data_dir = rampart-data`: text that needs quotes.
fn unquoted_text_hint(line: &str) -> Option<String> {
    let (key, value) = line.split_once('=')?;
    let (key, value) = (
        key.trim(),
        value.split('#').next().unwrap_or_default().trim(),
    );
    let starts_value = |c: char| matches!(c, '"' | '\'' | '[' | '{');
    let is_number_or_bool = value.parse::<f64>().is_ok() || value == "true" || value == "false";
    if key.is_empty() || value.is_empty() || value.starts_with(starts_value) || is_number_or_bool {
        return None;
    }
    Some(format!(
        "text values (addresses, paths, durations, names) need quotes: `{key} = \"{value}\"`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_for(source: &str) -> Option<String> {
        let Err(error) = toml::de::DeTable::parse(source) else {
            panic!("expected invalid TOML: {source}");
        };
        finding(source, &error).help
    }

    #[test]
    fn unquoted_text_gets_a_quoted_suggestion() {
        assert_eq!(
            help_for("[server]\nlisten = 127.0.0.1:7070 # api\n").as_deref(),
            Some(
                "text values (addresses, paths, durations, names) need quotes: `listen = \"127.0.0.1:7070\"`"
            )
        );
        assert!(help_for("data_dir = rampart-data\n").is_some());
    }

    #[test]
    fn a_key_set_twice_is_named() {
        assert_eq!(
            help_for("name = \"a\"\nname = \"b\"\n").as_deref(),
            Some("`name` is already set in this table; a key may appear only once")
        );
    }

    #[test]
    fn other_syntax_errors_get_no_guess() {
        assert_eq!(help_for("[server\n"), None);
        assert_eq!(help_for("steps = [1, 2\n"), None);
    }
}
