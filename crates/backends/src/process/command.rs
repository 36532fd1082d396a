//! Turning the configured command template into the command line of one instance.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use rampart_config::ProcessBackendConfig;
use tokio::process::Command;

/// Substitutes `{version}`, `{port}`, `{instance}` (the instance's index, from 0) and
/// `{rampart}` (this rampart executable, shell-quoted).
pub(crate) fn render(template: &str, version: &str, port: u16, index: u32) -> String {
    let mut line = template
        .replace("{version}", version)
        .replace("{port}", &port.to_string())
        .replace("{instance}", &index.to_string());
    if line.contains("{rampart}") {
        line = line.replace("{rampart}", rampart_executable());
    }
    line
}

/// The running rampart binary, so that a config can start its built-in sample app
/// (or any subcommand) without rampart being on `PATH`. Should the OS not say where
/// the executable is, `rampart` is looked up on `PATH` as a last resort.
fn rampart_executable() -> &'static str {
    static EXE: OnceLock<String> = OnceLock::new();
    EXE.get_or_init(|| match std::env::current_exe() {
        Ok(path) => shell_quote(&path.display().to_string()),
        Err(error) => {
            tracing::warn!(%error, "cannot locate the rampart executable; `{{rampart}}` runs `rampart` from PATH");
            "rampart".into()
        }
    })
}

/// Quotes `text` as one word for `/bin/sh`.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=,".contains(&b))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The line handed to `/bin/sh -c`. A single simple command is `exec`ed, so the
/// instance itself leads its process group and keeps rampart's parent-death signal:
/// dash forks for a `-c` command, the signal does not pass to the forked child, and
/// that child would outlive a `kill -9` of rampart until the next start cleans up.
/// Anything else (control operators, subshells, reserved words, leading
/// assignments, a line that already `exec`s) runs as written.
pub(crate) fn shell_line(line: &str) -> String {
    const RESERVED: [&str; 16] = [
        "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
        "in", "!", "exec", "function",
    ];
    let trimmed = line.trim();
    // `2>&1` and `<&3` duplicate descriptors; they are not control operators.
    let compound = trimmed
        .replace(">&", ">")
        .replace("<&", "<")
        .chars()
        .any(|c| {
            matches!(
                c,
                ';' | '&' | '|' | '\n' | '\r' | '(' | ')' | '{' | '}' | '`'
            )
        });
    let first = trimmed.split_whitespace().next().unwrap_or("");
    let simple = !compound
        && !first.is_empty()
        && !first.starts_with('#')
        && !first.contains('=')
        && !RESERVED.contains(&first);
    if simple {
        format!("exec {trimmed}")
    } else {
        line.to_string()
    }
}

/// The command runs through `/bin/sh -c`, so the template may use pipes, `exec`,
/// redirections and variables. Besides the configured `env`, the instance sees
/// `RAMPART_SERVICE`, `RAMPART_VERSION`, `RAMPART_PORT` and `RAMPART_INSTANCE`.
/// `output`: files for stdout and stderr; `None` pipes them to rampart.
pub(crate) fn build(
    config: &ProcessBackendConfig,
    service: &str,
    version: &str,
    addr: SocketAddr,
    index: u32,
    output: Option<(std::fs::File, std::fs::File)>,
) -> (Command, String) {
    let line = render(&config.command, version, addr.port(), index);
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(shell_line(&line))
        .envs(&config.env)
        .env("RAMPART_SERVICE", service)
        .env("RAMPART_VERSION", version)
        .env("RAMPART_PORT", addr.port().to_string())
        .env("RAMPART_INSTANCE", index.to_string())
        .stdin(Stdio::null());
    // Instances that outlive rampart write their log files themselves: a pipe read
    // by rampart would break (SIGPIPE) when rampart exits.
    match output {
        Some((stdout, stderr)) => command.stdout(stdout).stderr(stderr),
        None => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
    };
    if let Some(dir) = &config.working_dir {
        command.current_dir(dir);
    }
    (command, line)
}

/// Versions end up in shell commands and file names, so only a conservative alphabet
/// is accepted.
pub(crate) fn check_version(version: &str) -> Result<(), String> {
    if version.is_empty() || version.len() > 128 {
        return Err("a version label must have 1 to 128 characters".into());
    }
    if let Some(bad) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
    {
        return Err(format!(
            "{bad:?} is not allowed in a version label; use letters, digits, '.', '_', '-' and '+'"
        ));
    }
    Ok(())
}

/// A service name as a single path component.
pub(crate) fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "_".into()
    } else {
        safe
    }
}

pub(crate) struct InstancePaths {
    pub(crate) pid: PathBuf,
    pub(crate) stdout: PathBuf,
    pub(crate) stderr: PathBuf,
}

impl InstancePaths {
    pub(crate) fn new(run_dir: &Path, log_dir: &Path, instance_id: &str) -> Self {
        Self {
            pid: run_dir.join(format!("{instance_id}.pid")),
            stdout: log_dir.join(format!("{instance_id}.stdout.log")),
            stderr: log_dir.join(format!("{instance_id}.stderr.log")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_every_placeholder_everywhere() {
        assert_eq!(
            render(
                "./rel/{version}/srv --port {port} --id {instance} # {port}",
                "v2",
                8123,
                1
            ),
            "./rel/v2/srv --port 8123 --id 1 # 8123"
        );
    }

    #[test]
    fn rampart_names_this_executable_as_one_shell_word() {
        let line = render(
            "{rampart} sample-app --listen 127.0.0.1:{port}",
            "v1",
            9000,
            0,
        );
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            line,
            format!(
                "{} sample-app --listen 127.0.0.1:9000",
                shell_quote(&exe.display().to_string())
            )
        );
        assert_eq!(
            shell_quote("/opt/rampart/bin/rampart"),
            "/opt/rampart/bin/rampart"
        );
        assert_eq!(
            shell_quote("/home/o'neil/my bin/rampart"),
            r"'/home/o'\''neil/my bin/rampart'"
        );
    }

    #[test]
    fn a_simple_command_is_execed_so_it_leads_its_group() {
        assert_eq!(
            shell_line("'/opt/my app/srv' --port 8123 >>out.log 2>&1"),
            "exec '/opt/my app/srv' --port 8123 >>out.log 2>&1"
        );
        assert_eq!(shell_line("  ./srv $PORT "), "exec ./srv $PORT");
    }

    #[test]
    fn anything_compound_runs_as_written() {
        for line in [
            "cd rel && ./srv",
            "./srv; echo done",
            "./srv | tee log",
            "./srv &",
            "(./srv)",
            "{ ./srv; }",
            "./srv\n./other",
            "./srv --at `date`",
            "./srv --at $(date)",
            "PORT=1 ./srv",
            "exec ./srv",
            "if true; then ./srv; fi",
            "while true",
            "# nothing",
            "",
        ] {
            assert_eq!(shell_line(line), line, "{line}");
        }
    }

    #[test]
    fn version_labels_cannot_smuggle_shell() {
        assert!(check_version("v1.2.3-rc.1+build_7").is_ok());
        assert!(check_version("v1; rm -rf /").unwrap_err().contains("';'"));
        assert!(check_version("").is_err());
        assert!(check_version("../v1").is_err());
    }

    #[test]
    fn file_safe_names_stay_inside_their_folder() {
        assert_eq!(file_safe("check out/../x"), "check_out_.._x");
        assert_eq!(file_safe(".."), "_");
    }
}
