//! The README's walk-through, run as written: its shell blocks are read from
//! README.md (each marked `<!-- walk-through EXAMPLE: terminal N -->`) and run
//! against the real binary, terminal 1 and 2 in the background, terminal 3 as one
//! `sh -e` script. Only the addresses move (to free ports, so parallel tests and
//! other processes on this machine do not collide): in the commands, in a copy of
//! the example config, and for the client commands through `RAMPART_API`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_addr, rampart_bin};

/// The addresses the README uses.
const API: &str = "127.0.0.1:7070";
const SERVICE: &str = "127.0.0.1:8080";
const STABLE: &str = "127.0.0.1:9001";
const CANARY: &str = "127.0.0.1:9003";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The marked shell blocks of one example, by terminal number.
fn walkthrough_blocks(example: &str) -> Vec<(u32, Vec<String>)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let marker = format!("<!-- walk-through {example}: terminal ");
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(&marker) else {
            continue;
        };
        let terminal: u32 = rest
            .trim_end_matches("-->")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad marker: {line}"));
        assert_eq!(lines.next(), Some("```sh"), "a shell block follows {line}");
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(str::to_string)
            .collect();
        blocks.push((terminal, body));
    }
    blocks
}

/// A command line without its comment and its trailing `&`.
fn foreground(line: &str) -> Option<String> {
    let code = line.split(" #").next().unwrap_or("").trim();
    let code = code.strip_suffix('&').unwrap_or(code).trim();
    (!code.is_empty() && !code.starts_with('#')).then(|| code.to_string())
}

struct Walk {
    dir: tempfile::TempDir,
    addrs: Vec<(&'static str, SocketAddr)>,
    background: Vec<(Child, PathBuf)>,
}

impl Walk {
    fn new(example: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs = [API, SERVICE, STABLE, CANARY]
            .into_iter()
            .map(|readme_addr| (readme_addr, free_addr()))
            .collect();
        let walk = Walk {
            dir,
            addrs,
            background: Vec::new(),
        };
        let examples = walk.dir.path().join("examples");
        std::fs::create_dir(&examples).expect("examples dir");
        let config = std::fs::read_to_string(repo_root().join(format!("examples/{example}.toml")))
            .expect("example config");
        std::fs::write(
            examples.join(format!("{example}.toml")),
            walk.moved(&config),
        )
        .expect("copy the example");
        walk
    }

    /// `text` with the README's addresses replaced by this walk's.
    fn moved(&self, text: &str) -> String {
        self.addrs
            .iter()
            .fold(text.to_string(), |text, (from, to)| {
                text.replace(from, &to.to_string())
            })
    }

    fn addr(&self, readme_addr: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(from, _)| *from == readme_addr)
            .map(|(_, to)| *to)
            .expect("known address")
    }

    /// A shell as the README's reader has it: rampart on PATH, in the repository's
    /// folder, and the API where this walk put it.
    fn shell(&self, script: &str) -> Command {
        let bin_dir = Path::new(rampart_bin()).parent().expect("bin dir");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("/bin/sh");
        command
            .args(["-e", "-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("RAMPART_API", format!("http://{}", self.addr(API)))
            .env("RAMPART_LOG", "info")
            .env_remove("RAMPART_TOKEN")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        command
    }

    /// Starts a line in the background, its output in `<name>.log`.
    fn spawn(&mut self, line: &str, name: &str) {
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = self
            .shell(&format!("exec {}", self.moved(line)))
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn");
        self.background.push((child, log_path));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        self.background
            .iter()
            .map(|(_, path)| {
                format!(
                    "--- {} ---\n{}",
                    path.display(),
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs lines as one script, killed after `timeout`; returns its exit code and
    /// what it printed.
    fn run(&self, lines: &[String], timeout: Duration) -> (Option<i32>, String) {
        let script = lines
            .iter()
            .map(|line| self.moved(line))
            .collect::<Vec<_>>()
            .join("\n");
        let out_path = self.dir.path().join("terminal-3.log");
        let out = std::fs::File::create(&out_path).expect("output file");
        let mut child = self
            .shell(&script)
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("run the script");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "terminal 3 did not finish within {timeout:?}:\n{}\n{}",
                    std::fs::read_to_string(&out_path).unwrap_or_default(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        (
            status.code(),
            std::fs::read_to_string(&out_path).unwrap_or_default(),
        )
    }

    /// SIGTERM, as Ctrl-C would end it, and wait.
    fn stop(&mut self, index: usize) {
        let (child, _) = &mut self.background[index];
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        for (child, _) in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Instances outlive rampart by default; wherever the example keeps its data.
        for entry in walkdir_data_dirs(self.dir.path()) {
            support::kill_instances(&entry);
        }
    }
}

/// Folders under `root` (two levels deep) that hold a `run/` folder of pid files.
fn walkdir_data_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in level {
            if dir.join("run").is_dir() {
                found.push(dir.clone());
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                next.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        level = next;
    }
    found
}

fn ready(addr: SocketAddr) -> bool {
    reqwest::blocking::Client::new()
        .get(format!("http://{addr}/health/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .is_ok_and(|r| r.status().is_success())
}

/// Runs the example's three terminals and checks what each showed.
fn walk(example: &str, versions_seen: &[&str]) {
    let blocks = walkthrough_blocks(example);
    let terminals: Vec<u32> = blocks.iter().map(|(t, _)| *t).collect();
    assert_eq!(terminals, [1, 2, 3], "README blocks of {example}");
    let mut walk = Walk::new(example);

    // Terminal 1: everything in it keeps running.
    let commands: Vec<String> = blocks[0].1.iter().filter_map(|l| foreground(l)).collect();
    for (i, command) in commands.iter().enumerate() {
        walk.spawn(command, &format!("terminal-1-{i}"));
    }
    let api = walk.addr(API);
    let token = walk
        .dir
        .path()
        .join(format!("examples/{example}-data/admin.token"));
    walk.wait_for(
        "rampart serves and is ready",
        Duration::from_secs(60),
        || token.exists() && ready(api),
    );
    let serve_log = format!("terminal-1-{}", commands.len() - 1);
    assert!(
        walk.log(&serve_log)
            .contains("created the first admin token"),
        "{}",
        walk.logs()
    );

    // Terminal 2: users' traffic.
    let load = foreground(&blocks[1].1[0]).expect("a load command");
    assert!(load.starts_with("rampart load "), "{load}");
    walk.spawn(&load, "terminal-2");
    let load_index = walk.background.len() - 1;
    walk.wait_for("the load reports", Duration::from_secs(30), || {
        walk.log("terminal-2").contains("req/s")
    });

    // Terminal 3: the operator.
    let (code, output) = walk.run(&blocks[2].1, Duration::from_secs(300));
    assert_eq!(code, Some(0), "terminal 3:\n{output}\n{}", walk.logs());
    assert!(
        output.contains("v2: succeeded"),
        "deploy --wait ends promoted:\n{output}"
    );
    assert!(
        output.contains("stable       v2"),
        "status shows v2 stable:\n{output}"
    );
    assert!(
        output.contains("audit log verified"),
        "the audit log verifies:\n{output}"
    );
    // Steps counted from 1, and no weight before one is set.
    assert!(output.contains("step 1/2 at 10%"), "{output}");
    assert!(!output.contains("step 0"), "{output}");
    assert!(
        !output
            .lines()
            .any(|l| l.starts_with("validating") && l.contains("step")),
        "{output}"
    );

    // The traffic shifted from v1 to v2 and no user saw an error.
    walk.stop(load_index);
    let load_log = walk.log("terminal-2");
    assert!(
        load_log.contains(" 0 server errors") && load_log.contains(" 0 without an answer"),
        "{load_log}"
    );
    for version in versions_seen {
        assert!(
            load_log
                .lines()
                .any(|l| l.starts_with(&format!("{version} "))),
            "{version} answered:\n{load_log}"
        );
    }

    // Logs written to a file are plain text.
    let logs = walk.logs();
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in logs:\n{logs}");
}

#[test]
fn the_readme_walk_through_with_the_quickstart_example_works_as_written() {
    walk("quickstart", &["v1", "v2"]);
}

#[test]
fn the_readme_walk_through_with_the_process_example_works_as_written() {
    walk("process", &["v1", "v2"]);
}
