//! The CI chaos scenario: four workers, the emulator and a producer in their own containers,
//! and a seeded schedule of one worker kill, one network partition and one pause (both past the
//! lease failover time) and one shard split while records flow. The runner (`src/bin/chaos`)
//! checks its logs; this test asserts its must-be-zero figures and that it left no containers
//! or networks behind. The long schedules run from the command line (see RELIABILITY.md).
//!
//! Needs a Docker engine; fails without one.

use std::process::{Command, Stdio};

use kcl_integration_tests::container::docker_engine_api_version;

#[test]
fn a_short_seeded_fault_schedule_loses_nothing_and_keeps_order_and_fencing() {
    docker_engine_api_version(None).unwrap_or_else(|err| panic!("{err}"));
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "--schedule",
            "short",
            "--seeds",
            "7",
            "--failover",
            "3s",
        ])
        .args(["--keys", "16", "--workers", "4", "--shards", "4", "--out"])
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the chaos runner");
    let runner_pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let output = std::io::read_to_string(stdout).unwrap();
    let status = child.wait().unwrap();
    print!("{output}");

    let summary = output
        .lines()
        .find(|line| line.starts_with("chaos seed=7"))
        .unwrap_or_else(|| panic!("no summary line in:\n{output}"));
    for figure in [
        "coordination=kcl3 ",
        "lost=0 ",
        "order_violations=0 ",
        "checkpoint_violations=0 ",
        "drained=yes",
    ] {
        assert!(summary.contains(figure), "{figure} expected in: {summary}");
    }
    for fault in ["kill", "partition", "pause", "split"] {
        assert!(
            output.contains(&format!(" {fault} ")),
            "the schedule injected a {fault}"
        );
    }
    assert!(status.success(), "the runner failed: {status}");

    let label = format!("label=kcl-chaos.pid={runner_pid}");
    let leftovers = |what: &[&str]| {
        let listing = Command::new("docker")
            .args(what)
            .args(["--quiet", "--filter", &label])
            .output()
            .unwrap();
        String::from_utf8_lossy(&listing.stdout).trim().to_owned()
    };
    assert_eq!(leftovers(&["ps", "--all"]), "", "containers left behind");
    assert_eq!(leftovers(&["network", "ls"]), "", "networks left behind");
}
