//! Throughput of the `kcl-multilang` daemon to an amazon_kclpy processor that does nothing but
//! checkpoint every batch, and the daemon's per-batch overhead (the difference between large
//! and small batches, per extra batch).
//!
//! ```sh
//! cargo build --release -p kcl-core --features daemon        # the daemon under test
//! cargo test -p kcl-integration-tests --test multilang_daemon  # once: creates target/py-venv with amazon_kclpy
//! cargo run --release --example bench_multilang
//! ```

mod bench;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use bench::kcl::Clients;
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Records in the backlog each run drains.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// The Python with amazon_kclpy installed.
    #[arg(long, default_value = "target/py-venv/bin/python")]
    python: PathBuf,
}

fn daemon_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("kcl-multilang"))
        .context("locating the target directory")?;
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build --release -p kcl-core --features daemon",
        binary.display()
    );
    Ok(binary)
}

/// Runs the daemon over a fresh 2-shard stream holding `records` records, reading at most
/// `max_records` per batch; returns the time until every shard's checkpoint is at its last
/// record, and how many batches that took at least.
async fn drain(
    clients: &Clients,
    endpoint: &str,
    args: &Args,
    max_records: usize,
) -> anyhow::Result<(Duration, usize)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let stream = format!("bench-multilang-{nanos}");
    bench::create_stream(&clients.kinesis, &stream, 2).await?;
    let mut last = std::collections::BTreeMap::new();
    for chunk in (0..args.records).collect::<Vec<_>>().chunks(500) {
        let entries = chunk
            .iter()
            .map(|i| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{i}"))
                    .data(aws_sdk_kinesis::primitives::Blob::new(vec![b'x'; 100]))
                    .build()
                    .expect("key and data are set")
            })
            .collect();
        let out = clients
            .kinesis
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
            .await?;
        for entry in out.records() {
            if let (Some(shard), Some(seq)) = (entry.shard_id(), entry.sequence_number()) {
                last.insert(shard.to_owned(), seq.to_owned());
            }
        }
    }
    let dir = tempfile::tempdir()?;
    let script = std::env::current_dir()?.join("tests/python/multilang/noop_app.py");
    let properties = format!(
        "executableName = {} {}\nstreamName = {stream}\napplicationName = {stream}\n\
         regionName = us-east-1\nkinesisEndpoint = {endpoint}\ndynamoDBEndpoint = {endpoint}\n\
         initialPositionInStream = TRIM_HORIZON\nmaxRecords = {max_records}\n\
         idleTimeBetweenReadsInMillis = 200\n",
        args.python.display(),
        script.display()
    );
    let file = dir.path().join("app.properties");
    std::fs::write(&file, properties)?;
    let started = Instant::now();
    let mut daemon = tokio::process::Command::new(daemon_binary()?)
        .arg("--properties")
        .arg(&file)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting kcl-multilang")?;
    loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the daemon did not finish the backlog"
        );
        let mut done = true;
        for (shard, seq) in &last {
            let item = clients
                .dynamodb
                .get_item()
                .table_name(&stream)
                .key("leaseKey", AttributeValue::S(shard.clone()))
                .consistent_read(true)
                .send()
                .await;
            let checkpoint = item
                .ok()
                .and_then(|i| i.item().and_then(|i| i.get("checkpoint")).cloned())
                .and_then(|v| v.as_s().ok().cloned());
            done &= checkpoint.as_deref() == Some(seq.as_str());
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    let batches = args.records.div_ceil(max_records).max(last.len());
    Ok((took, batches))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.python.exists(),
        "{} is missing: run `cargo test -p kcl-integration-tests --test multilang_daemon` once, or pass --python",
        args.python.display()
    );
    let emulator = kcl_emulator::EmbeddedEmulator::start(kcl_emulator::Config::embedded()).await?;
    let endpoint = emulator.endpoint_url();
    let clients = Clients::new(&endpoint).await;
    let (large, large_batches) = drain(&clients, &endpoint, &args, 10_000).await?;
    let (small, small_batches) = drain(&clients, &endpoint, &args, 100).await?;
    let per_batch = (small.as_secs_f64() - large.as_secs_f64())
        / (small_batches as f64 - large_batches as f64).max(1.0);
    let row = |workload: String, took: Duration, note: Option<String>| bench::Row {
        workload,
        target: "kcl-multilang + amazon_kclpy".to_owned(),
        records_per_sec: Some(args.records as f64 / took.as_secs_f64()),
        mb_per_sec: Some(args.records as f64 * 100.0 / took.as_secs_f64() / 1e6),
        p50_ms: None,
        p99_ms: None,
        note,
    };
    let rows = vec![
        row(
            format!("daemon -> Python no-op processor, 2 shards, {} x 100 B, maxRecords 10000 (incl. start-up)", args.records),
            large,
            None,
        ),
        row(
            format!("daemon -> Python no-op processor, 2 shards, {} x 100 B, maxRecords 100", args.records),
            small,
            Some(format!("{:.2} ms per extra batch", per_batch * 1000.0)),
        ),
    ];
    emulator.shutdown().await;
    bench::print_table("kcl-multilang benchmark", &rows);
    Ok(())
}
