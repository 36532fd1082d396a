//! Reading a config: TOML syntax, then structure (keys, types), then meaning. Each
//! stage reports everything it finds; meaning is checked even when the structure is
//! not clean, on the file with its bad values set aside, so one run reports it all.

use std::path::Path;

use toml::de::DeTable;

use crate::diagnostic::{ConfigError, Finding, SourceMap};
use crate::model::Config;
use crate::{semantic, structure, syntax};

/// Reads and validates the config file at `path`.
///
/// A relative `server.data_dir` is resolved against the folder holding the file, so
/// the store lands in the same place whatever the working directory; so are the
/// `tls` certificate and key paths, whose files are then read and checked (a missing,
/// unreadable or mismatched file is reported at its `cert` or `key` line). Other
/// paths (commands, `working_dir`) are left as written.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|io| ConfigError::Read {
        path: path.to_path_buf(),
        io,
    })?;
    let mut config = parse(&source, &path.display().to_string())?;
    let folder = path
        .parent()
        .filter(|_| config.server.data_dir.is_relative());
    if let Some(folder) = folder {
        config.server.data_dir = folder.join(&config.server.data_dir);
    }
    crate::tls_files::resolve_paths(&mut config, path.parent().unwrap_or(Path::new("")));
    crate::tls_files::check(&config, &source, &path.display().to_string())?;
    Ok(config)
}

/// Validates config text; `origin` names it in messages (usually the file name).
/// Relative paths are returned as written.
pub fn parse(source: &str, origin: &str) -> Result<Config, ConfigError> {
    let map = SourceMap::new(origin, source);
    let document = DeTable::parse(source)
        .map_err(|error| map.diagnose(vec![syntax::finding(source, &error)]))?;
    let structure = structure::check(source, &document);
    if !structure.findings.is_empty() {
        // Report the problems of meaning too, where the rest of the file can be
        // read: fixing one round of errors should not reveal another.
        let mut findings = structure.findings;
        let repaired = structure
            .repairs
            .zip(toml::from_str::<toml::Table>(source).ok())
            .and_then(|(repairs, table)| structure::repair(table, &repairs))
            .and_then(|table| toml::Value::Table(table).try_into::<Config>().ok());
        if let Some(config) = repaired {
            let about_repaired = |f: &Finding| findings.iter().any(|s| overlaps(&s.span, &f.span));
            let more: Vec<Finding> = semantic::check(&config, source, &document)
                .into_iter()
                .filter(|f| !about_repaired(f))
                .collect();
            findings.extend(more);
        }
        return Err(map.diagnose(findings));
    }
    // The structure check accepts only what the model can hold, so this is not
    // expected to fail; if it does, serde's own located message is still shown.
    let config: Config = toml::from_str(source).map_err(|error| {
        map.diagnose(vec![Finding::new(
            error.span().unwrap_or(0..0),
            error.message().to_string(),
            "",
        )])
    })?;
    let findings = semantic::check(&config, source, &document);
    if !findings.is_empty() {
        return Err(map.diagnose(findings));
    }
    Ok(config)
}

/// Whether two spans share a byte, or an empty one sits inside the other.
fn overlaps(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    a.start < b.end.max(b.start + 1) && b.start < a.end.max(a.start + 1)
}

/// Loads the file and describes what it configures, for `rampart check-config`.
pub fn check(path: &Path) -> Result<String, ConfigError> {
    load(path).map(|config| config.summary())
}
