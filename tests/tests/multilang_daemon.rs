//! The `kcl-multilang` daemon as a real process: an unchanged amazon_kclpy application through
//! a split and a graceful shutdown, and a scripted child that misbehaves in the ways the Java
//! daemon handles badly.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use kcl_integration_tests::kcl::put_records;
use kcl_integration_tests::multilang::{events, named, processed, records_per_child, Daemon};
use kcl_integration_tests::prometheus::{free_local_addr, sample, scrape};
use kcl_integration_tests::python::python_env;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
    wait_for_active, workspace_root,
};
use serde_json::Value;

fn script(name: &str) -> String {
    workspace_root()
        .join("tests/python/multilang")
        .join(name)
        .display()
        .to_string()
}

/// The properties every test shares; `extra` overrides or adds keys.
fn properties(
    executable: String,
    stream: &str,
    application: &str,
    endpoint: &str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut props = vec![
        ("executableName", executable),
        ("streamName", stream.to_owned()),
        ("applicationName", application.to_owned()),
        ("regionName", "us-east-1".to_owned()),
        ("kinesisEndpoint", endpoint.to_owned()),
        ("dynamoDBEndpoint", endpoint.to_owned()),
        ("initialPositionInStream", "TRIM_HORIZON".to_owned()),
        ("failoverTimeMillis", "2000".to_owned()),
        ("idleTimeBetweenReadsInMillis", "100".to_owned()),
        ("shardSyncIntervalMillis", "500".to_owned()),
        ("shutdownGraceMillis", "10000".to_owned()),
        // Keys of the Java daemon that mean nothing here: accepted and logged.
        (
            "AWSCredentialsProvider",
            "DefaultAWSCredentialsProviderChain".to_owned(),
        ),
        ("processingLanguage", "python/3.11".to_owned()),
    ];
    for (key, value) in extra {
        props.retain(|(k, _)| k != key);
        props.push((key, (*value).to_owned()));
    }
    props
}

async fn checkpoint_of(dynamodb: &aws_sdk_dynamodb::Client, table: &str, shard: &str) -> String {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(shard.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    item.item()
        .and_then(|i| i.get("checkpoint"))
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn expected(prefix: &str, count: usize) -> BTreeSet<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_amazon_kclpy_application_runs_through_a_split_and_a_graceful_shutdown() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let dynamodb = dynamodb_client(&endpoint);
    let python = tokio::task::spawn_blocking(python_env).await.unwrap();
    let stream = unique_name("kclpy");
    let application = unique_name("kclpy-app");
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "first", 300).await;

    let out = tempfile::tempdir().unwrap();
    let executable = format!("{} {}", python.python().display(), script("kclpy_app.py"));
    let mut daemon = Daemon::start(
        out.path(),
        &properties(executable, &stream, &application, &endpoint, &[]),
        &[("KCLPY_OUT_DIR", out.path().as_os_str())],
    );
    let first = expected("first", 300);
    eventually("the first records in Python", || async {
        first
            .is_subset(&processed(&events(out.path())))
            .then_some(())
    })
    .await;

    // Split shard 0; the child of shard 0 must be told shardEnded and checkpoint SHARD_END.
    let upper_half_of_shard_0 = (1u128 << 126).to_string();
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(upper_half_of_shard_0)
        .send()
        .await
        .unwrap();
    wait_for_active(&kinesis, &stream).await;
    put_records(&kinesis, &stream, "second", 300).await;
    let all: BTreeSet<String> = first.union(&expected("second", 300)).cloned().collect();
    eventually("every record in Python", || async {
        all.is_subset(&processed(&events(out.path()))).then_some(())
    })
    .await;
    eventually("SHARD_END on shard 0", || async {
        (checkpoint_of(&dynamodb, &application, "shardId-000000000000").await == "SHARD_END")
            .then_some(())
    })
    .await;

    assert!(
        daemon.terminate(Duration::from_secs(30)).await,
        "graceful exit:\n{}",
        daemon.log()
    );
    let events = events(out.path());
    let ended: Vec<&Value> = named(&events, "shard_ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["shard"], "shardId-000000000000");
    let shard_end_checkpoints = named(&events, "checkpoint")
        .into_iter()
        .filter(|e| e["at"] == "shard_end")
        .count();
    assert_eq!(shard_end_checkpoints, 1);
    assert!(named(&events, "checkpoint_error").is_empty(), "{events:?}");
    // Every open shard's child was asked to shut down and checkpointed its last record.
    let shut_down: BTreeSet<String> = named(&events, "shutdown_requested")
        .iter()
        .map(|e| e["shard"].as_str().unwrap().to_owned())
        .collect();
    for shard in [
        "shardId-000000000001",
        "shardId-000000000002",
        "shardId-000000000003",
    ] {
        assert!(
            shut_down.contains(shard),
            "{shard} shut down: {shut_down:?}"
        );
        let last_record = named(&events, "record")
            .into_iter()
            .filter(|e| e["shard"] == shard)
            .filter_map(|e| e["sequence_number"].as_str())
            .max_by_key(|s| (s.len(), s.to_string()))
            .map(str::to_owned);
        if let Some(last) = last_record {
            assert_eq!(checkpoint_of(&dynamodb, &application, shard).await, last);
        }
    }
    let log = daemon.log();
    assert!(
        log.contains("property has no effect in this daemon"),
        "{log}"
    );
}

/// Starts the scripted child in `mode` on a fresh 2-shard stream holding 200 records, waits
/// until every record was processed, shuts the daemon down, and returns the children's events.
async fn run_scripted(mode: &str, extra: &[(&'static str, &str)]) -> Vec<Value> {
    run_scripted_with_log(mode, extra).await.0
}

/// [`run_scripted`], also returning the daemon's log.
async fn run_scripted_with_log(mode: &str, extra: &[(&'static str, &str)]) -> (Vec<Value>, String) {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let python = tokio::task::spawn_blocking(python_env).await.unwrap();
    let stream = unique_name("scripted");
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "rec", 200).await;
    let out = tempfile::tempdir().unwrap();
    let executable = format!(
        "{} {}",
        python.python().display(),
        script("scripted_child.py")
    );
    let mut daemon = Daemon::start(
        out.path(),
        &properties(
            executable,
            &stream,
            &unique_name("scripted-app"),
            &endpoint,
            extra,
        ),
        &[
            ("CHILD_OUT_DIR", out.path().as_os_str()),
            ("CHILD_MODE", OsStr::new(mode)),
        ],
    );
    let all = expected("rec", 200);
    eventually("every record", || async {
        all.is_subset(&processed(&events(out.path()))).then_some(())
    })
    .await;
    assert!(
        daemon.is_running(),
        "the daemon survived:\n{}",
        daemon.log()
    );
    assert!(
        daemon.terminate(Duration::from_secs(30)).await,
        "graceful exit:\n{}",
        daemon.log()
    );
    (events(out.path()), daemon.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_child_writes_to_stderr_as_it_exits_is_logged_before_the_daemon_exits() {
    let (events, log) = run_scripted_with_log("stderr_at_exit", &[]).await;
    let children: BTreeSet<i64> = named(&events, "initialize")
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(children.len(), 2, "{events:?}");
    for pid in children {
        assert!(
            log.contains(&format!("child stderr: parting words of {pid}"))
                && log.contains(&format!("child stderr: last words of {pid}")),
            "the last stderr line of {pid}:\n{}",
            log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_skipped_and_a_checkpoint_during_initialize_is_refused() {
    let events = run_scripted("checkpoint_in_initialize,garbage", &[]).await;
    let refused = named(&events, "initialize_checkpoint");
    assert!(!refused.is_empty());
    for answer in refused {
        assert_eq!(answer["error"], "InvalidStateException");
    }
    for record in named(&events, "record") {
        assert_eq!(record["action"], "record");
    }
    for checkpoint in named(&events, "checkpoint") {
        assert_eq!(checkpoint["error"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_crashes_mid_batch_is_replaced_and_nothing_is_lost() {
    let events = run_scripted("crash_once", &[]).await;
    let crashed: BTreeSet<String> = named(&events, "crashing")
        .iter()
        .map(|e| e["shard"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(crashed.len(), 2, "each shard's first child crashed once");
    // The replacement for each shard started from the last checkpoint, before the lost batch.
    let children = records_per_child(&events);
    for shard in crashed {
        let processes = children.keys().filter(|(s, _)| *s == shard).count();
        assert_eq!(
            processes, 1,
            "only the replacement of {shard} processed records"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_child_is_killed_after_the_timeout_and_replaced() {
    let events = run_scripted("hang_once", &[("timeoutInSeconds", "1")]).await;
    let hung: Vec<i64> = named(&events, "hanging")
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(hung.len(), 2, "each shard's first child hung once");
    for pid in hung {
        // Killed: no such process any more (signal 0 only checks).
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "the hung child {pid} was killed");
    }
}

/// amazon_kclpy's own sample, as shipped: its properties file unchanged but for the stream and
/// the endpoints, its application unchanged. The file sets no retrieval mode and no polling
/// key, so the daemon reads by fan-out as the Java one would; the sample writes its record
/// lines to stderr without newlines, so most of them reach the log only as each child exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amazon_kclpys_sample_runs_unchanged_and_its_record_lines_reach_the_log() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let dynamodb = dynamodb_client(&endpoint);
    let python = tokio::task::spawn_blocking(python_env).await.unwrap();
    let stream = unique_name("kclpysample");
    create_active_stream(&kinesis, &stream, 2).await;
    let stream_arn = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned();
    let records = 40;
    put_records(&kinesis, &stream, "sample", records).await;

    let samples = python.kclpy_samples();
    let shipped = std::fs::read_to_string(samples.join("sample.properties")).unwrap();
    let mut replaced = 0;
    let mut text = String::new();
    for line in shipped.lines() {
        let line = match line.split([' ', '=']).next().unwrap_or_default() {
            "streamArn" => format!("streamArn = {stream_arn}"),
            "streamName" => format!("streamName = {stream}"),
            _ => {
                text.push_str(line);
                text.push('\n');
                continue;
            }
        };
        replaced += 1;
        text.push_str(&line);
        text.push('\n');
    }
    assert_eq!(replaced, 2, "the sample names its stream twice:\n{shipped}");
    text.push_str(&format!(
        "kinesisEndpoint = {endpoint}\ndynamoDBEndpoint = {endpoint}\n"
    ));
    let application = parse_key(&shipped, "applicationName");

    // `executableName = sample_kclpy_app.py` is found on PATH, as from the samples directory,
    // and its `#!/usr/bin/env python` finds the environment's Python.
    let venv_bin = python.python().parent().unwrap().to_owned();
    let path = std::env::join_paths([samples.clone(), venv_bin].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let metrics = free_local_addr();
    let out = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_with_file(
        out.path(),
        &text,
        &[("PATH", path.as_os_str())],
        &[
            OsStr::new("--metrics-addr"),
            OsStr::new(&metrics.to_string()),
        ],
    );
    eventually("every record processed by the sample", || async {
        let body = scrape(metrics).await?;
        (sample(&body, "kcl_records_processed_total")? >= records as f64).then_some(())
    })
    .await;
    assert!(
        daemon.terminate(Duration::from_secs(30)).await,
        "graceful exit:\n{}",
        daemon.log()
    );

    let log = daemon.log();
    for n in 0..records {
        assert!(
            log.contains(&format!("Record (Partition Key: pk-{n}, ")),
            "the sample's line for record {n}:\n{log}"
        );
    }
    assert!(!log.contains("unknown property"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    // Fan-out, as the Java daemon reads with this file: the application's consumer exists.
    let consumers = kinesis
        .list_stream_consumers()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = consumers
        .consumers()
        .iter()
        .map(|c| c.consumer_name())
        .collect();
    assert_eq!(names, [application.as_str()], "{log}");
    // The sample checkpoints on shutdown.
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let checkpoint = checkpoint_of(&dynamodb, &application, shard).await;
        assert!(
            checkpoint.bytes().all(|b| b.is_ascii_digit()) && !checkpoint.is_empty(),
            "{shard}: {checkpoint:?}"
        );
    }
}

/// The value of `key` in a properties text of plain `key = value` lines.
fn parse_key(text: &str, key: &str) -> String {
    kcl_core::multilang::properties::parse(text)
        .remove(key)
        .unwrap_or_else(|| panic!("{key} in:\n{text}"))
}
