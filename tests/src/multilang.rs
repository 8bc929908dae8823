//! Running the `kcl-multilang` daemon as a real process against an emulator, and reading what
//! its child processes wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// The daemon binary that `cargo test --workspace` builds (the tests crate turns on kcl-core's
/// `daemon` feature).
///
/// # Panics
/// When it has not been built.
pub fn daemon_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/kcl-multilang
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory");
    let binary = profile_dir.join("kcl-multilang");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p kcl-core --features daemon`",
        binary.display()
    );
    binary
}

/// A running daemon; killed on drop if still running.
#[derive(Debug)]
pub struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// Writes `properties` to `dir/app.properties` and starts the daemon on it, with static
    /// test credentials in its (and so its children's) environment plus `env`. Its stderr
    /// goes to `dir/daemon.log`.
    pub fn start(dir: &Path, properties: &[(&str, String)], env: &[(&str, &OsStr)]) -> Daemon {
        let text: String = properties
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        Daemon::start_with_file(dir, &text, env, &[])
    }

    /// Like [`Daemon::start`], with the properties file's whole `text` and further
    /// command-line `args`.
    pub fn start_with_file(
        dir: &Path,
        text: &str,
        env: &[(&str, &OsStr)],
        args: &[&OsStr],
    ) -> Daemon {
        let file = dir.join("app.properties");
        std::fs::write(&file, text).expect("writing the properties file");
        let log = dir.join("daemon.log");
        let mut command = tokio::process::Command::new(daemon_binary());
        command
            .arg("--properties")
            .arg(&file)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the daemon log"))
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("starting kcl-multilang");
        Daemon { child, log }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; returns whether it exited 0.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().expect("the daemon is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success());
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the daemon").success(),
            Err(_) => false,
        }
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Every event the children wrote to `dir` (`*.jsonl`), in file order within each file.
pub fn events(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                // A line being written right now may be incomplete: skip it.
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The events named `event`.
pub fn named<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

/// The distinct payloads of the `record` events.
pub fn processed(events: &[Value]) -> BTreeSet<String> {
    named(events, "record")
        .iter()
        .filter_map(|e| e["data"].as_str().map(str::to_owned))
        .collect()
}

/// Record payloads per shard in delivery order, per child process (`shard -> pid -> data`).
pub fn records_per_child(events: &[Value]) -> BTreeMap<(String, i64), Vec<String>> {
    let mut out: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
    for e in named(events, "record") {
        let key = (
            e["shard"].as_str().unwrap_or_default().to_owned(),
            e["pid"].as_i64().unwrap_or_default(),
        );
        out.entry(key)
            .or_default()
            .push(e["sequence_number"].as_str().unwrap_or_default().to_owned());
    }
    out
}
