//! What a version name may be. Versions are substituted into instance commands
//! (`{version}`), log file names and URLs, so `..`, `/`, a leading `-` (read as an
//! option: `--help` made an instance exit with status 2) and control characters
//! are refused everywhere a version enters rampart: the API and the config.

/// The longest version name accepted.
pub const VERSION_MAX_LEN: usize = 128;

/// Checks a version name; the error is the rule it breaks, as a phrase that follows
/// "version `x` is not allowed: ".
pub fn check_version(version: &str) -> Result<(), &'static str> {
    if version.is_empty() {
        return Err("it is empty");
    }
    if version.len() > VERSION_MAX_LEN {
        return Err("it is longer than 128 characters");
    }
    if version == "." || version == ".." {
        return Err("`.` and `..` name directories");
    }
    if version.starts_with('-') {
        return Err("it starts with `-`, which a command reads as an option");
    }
    if version.contains(['/', '\\']) {
        return Err("it contains a path separator");
    }
    if version.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if !version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        return Err("use only letters, digits, `.`, `_`, `-` and `+`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_versions_pass() {
        for ok in ["v2", "1.4.0", "2024-05-06_build.7", "v1+sha.abc", "a-"] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_version(&"v".repeat(VERSION_MAX_LEN)), Ok(()));
    }

    #[test]
    fn each_rule_is_named() {
        let cases = [
            ("", "it is empty"),
            (".", "`.` and `..` name directories"),
            ("..", "`.` and `..` name directories"),
            (
                "-v",
                "it starts with `-`, which a command reads as an option",
            ),
            (
                "--help",
                "it starts with `-`, which a command reads as an option",
            ),
            ("a/b", "it contains a path separator"),
            ("..\\x", "it contains a path separator"),
            ("v1\n", "it contains a control character"),
            ("v\u{7f}", "it contains a control character"),
            ("v 2", "use only letters, digits, `.`, `_`, `-` and `+`"),
            ("vé", "use only letters, digits, `.`, `_`, `-` and `+`"),
        ];
        for (bad, rule) in cases {
            assert_eq!(check_version(bad), Err(rule), "{bad:?}");
        }
        assert_eq!(
            check_version(&"v".repeat(VERSION_MAX_LEN + 1)),
            Err("it is longer than 128 characters")
        );
    }
}
