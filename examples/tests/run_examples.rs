//! Every example runs to completion with small sizes, and prints what its summary promises.
//! `cargo test` builds the examples before running tests, so they are run from the target dir.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target layout");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} was not built; run the tests with `cargo test`",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name))
        .args(args)
        .output()
        .expect("running the example");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn emulator_demo_reads_back_every_record() {
    let stdout = run("emulator_demo", &["--records", "2000", "--shards", "3"]);
    assert!(stdout.contains("wrote 2000 records"), "{stdout}");
    assert!(stdout.contains("read 2000 back"), "{stdout}");
}

#[test]
fn emulator_benchmark_quick_mode_prints_its_table() {
    let stdout = run("bench_emulator", &["--quick"]);
    for row in [
        "PutRecords 500x100 B, 1 conn",
        "PutRecords 500x100 B, 4 conn",
        "GetRecords drain",
        "put -> GetRecords latency",
    ] {
        assert!(stdout.contains(row), "missing row {row}:\n{stdout}");
    }
    assert!(stdout.contains("emulator (durable)"), "{stdout}");
}

#[test]
fn benchmark_suite_quick_mode_prints_every_row() {
    let stdout = run("bench_suite", &["--quick"]);
    for row in [
        "PutRecords 500x100 B, 1 conn",
        "PutRecords 500x100 B, 1 conn, minimal raw HTTP client",
        "GetRecords drain",
        "DynamoDB conditional UpdateItem",
        "4 conn, minimal raw HTTP client",
        "KCL end to end, 4 shards, polling",
        "KCL end to end, 16 shards, fan-out",
        "put -> process_records latency, fan-out",
        "failover: worker killed",
        "lease-table writes per lease per minute",
        "one worker takes 50 unowned leases",
        "4 workers started together share 50 leases",
        "worker memory holding 20 leases",
    ] {
        assert!(stdout.contains(row), "missing {row:?}:\n{stdout}");
    }
    let durable_updates = stdout.lines().any(|line| {
        line.starts_with("| emulator (durable) | DynamoDB conditional UpdateItem")
            && line.contains("minimal raw HTTP client")
    });
    assert!(durable_updates, "no durable UpdateItem row:\n{stdout}");
}

#[test]
fn load_client_ceiling_runs_against_the_canned_server() {
    let stdout = run("bench_emulator", &["--quick", "--canned"]);
    assert!(stdout.contains("load client vs canned server"), "{stdout}");
}

#[test]
fn comparison_quick_mode_runs_our_rows_without_peers() {
    let stdout = run(
        "bench_compare",
        &["--quick", "--skip-ferrokinesis", "--skip-moto"],
    );
    assert!(
        stdout.contains("| kcl-emulator | PutRecords 500x100 B, 4 conn |"),
        "{stdout}"
    );
}

/// Counts the records in every shard of `stream`.
async fn count_records(endpoint: &str, stream: &str) -> usize {
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
    let client = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("t", "t", None, None, "static"))
            .endpoint_url(endpoint)
            .build(),
    );
    let mut total = 0;
    for shard in client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards()
    {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        loop {
            let out = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            total += out.records().len();
            iterator = out.next_shard_iterator.unwrap();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_writes_plain_and_aggregated_records() {
    let emulator = kcl_emulator::EmbeddedEmulator::start(kcl_emulator::Config::embedded())
        .await
        .unwrap();
    let endpoint = emulator.endpoint_url();
    for (stream, extra, expected) in [("plain", None, 1000), ("packed", Some("--aggregate"), 10)] {
        let endpoint_arg = endpoint.clone();
        let stdout = tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "--endpoint",
                &endpoint_arg,
                "--stream",
                stream,
                "--create",
                "2",
                "--records",
                "1000",
                "--rate",
                "0",
            ];
            args.extend(extra);
            run("producer", &args)
        })
        .await
        .unwrap();
        assert!(stdout.contains("produced 1000 user records"), "{stdout}");
        assert_eq!(count_records(&endpoint, stream).await, expected, "{stream}");
    }
}

#[test]
fn quickstart_runs_a_fleet_through_a_reshard_and_every_guarantee_holds() {
    let stdout = run(
        "quickstart",
        &["--records", "2000", "--shards", "3", "--workers", "2"],
    );
    for line in [
        "records produced:              2000",
        "records processed:             2000",
        "records missing:               0",
        "per-shard order kept:          yes",
        "parents finished before children: yes",
        "graceful shutdown:             yes",
        "all guarantees held",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }
}

#[test]
fn quickstart_in_fan_out_mode_keeps_every_guarantee() {
    let stdout = run(
        "quickstart",
        &[
            "--records",
            "2000",
            "--shards",
            "3",
            "--workers",
            "2",
            "--mode",
            "fanout",
            "--app",
            "quick-fanout",
        ],
    );
    assert!(stdout.contains("reading by enhanced fan-out"), "{stdout}");
    for line in [
        "records missing:               0",
        "per-shard order kept:          yes",
        "parents finished before children: yes",
        "all guarantees held",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }
}

#[test]
fn fanout_example_prints_what_it_put() {
    let stdout = run("fanout", &["--records", "25"]);
    assert!(
        stdout.contains("processed 25 records by enhanced fan-out"),
        "{stdout}"
    );
    for i in 0..25 {
        assert!(
            stdout.contains(&format!("record {i} ")),
            "record {i}:\n{stdout}"
        );
    }
}

#[test]
fn quickstart_without_a_reshard_reports_no_lineage() {
    let stdout = run(
        "quickstart",
        &[
            "--records",
            "500",
            "--shards",
            "2",
            "--workers",
            "1",
            "--no-reshard",
            "--app",
            "no-reshard",
        ],
    );
    assert!(stdout.contains("all guarantees held"), "{stdout}");
    assert!(!stdout.contains("parents finished"), "{stdout}");
}

/// A consumer process whose printed lines are collected as they arrive.
struct ConsumerProcess {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn start_consumer(endpoint: &str, stream: &str, id: &str, mode: &str) -> ConsumerProcess {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(example("consumer"))
        .args([
            "--endpoint",
            endpoint,
            "--stream",
            stream,
            "--app",
            "fleet-app",
            "--worker-id",
            id,
            "--failover-secs",
            "2",
            "--mode",
            mode,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the consumer example");
    let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let stdout = child.stdout.take().unwrap();
    let sink = std::sync::Arc::clone(&lines);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    ConsumerProcess { child, lines }
}

fn payloads(consumers: &[&ConsumerProcess]) -> std::collections::HashSet<String> {
    consumers
        .iter()
        .flat_map(|c| {
            c.lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| l.rsplit(' ').next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_processes_in_both_modes_form_a_fleet_that_survives_a_kill() {
    use aws_sdk_kinesis::primitives::Blob;
    let emulator = kcl_emulator::EmbeddedEmulator::start(kcl_emulator::Config::embedded())
        .await
        .unwrap();
    let endpoint = emulator.endpoint_url();
    let client = {
        use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("t", "t", None, None, "static"))
                .endpoint_url(&endpoint)
                .build(),
        )
    };
    client
        .create_stream()
        .stream_name("fleet")
        .shard_count(4)
        .send()
        .await
        .unwrap();
    wait_for("the stream", || true).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let put = |prefix: &'static str| {
        let client = client.clone();
        async move {
            for i in 0..100 {
                client
                    .put_record()
                    .stream_name("fleet")
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(format!("{prefix}-{i}")))
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    put("one").await;
    // One reads by polling and one by fan-out: the modes share one lease table unchanged.
    let mut a = start_consumer(&endpoint, "fleet", "a", "polling");
    let mut b = start_consumer(&endpoint, "fleet", "b", "fanout");
    let first: std::collections::HashSet<String> = (0..100).map(|i| format!("one-{i}")).collect();
    wait_for("both processes to print every record", || {
        first.is_subset(&payloads(&[&a, &b]))
    })
    .await;

    // Kill one process outright; the other takes its shards after the failover time.
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    put("two").await;
    let second: std::collections::HashSet<String> = (0..100).map(|i| format!("two-{i}")).collect();
    wait_for("the survivor to print the second round", || {
        second.is_subset(&payloads(&[&b]))
    })
    .await;

    // SIGTERM is a graceful shutdown: exit status 0.
    let pid = b.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), b.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
