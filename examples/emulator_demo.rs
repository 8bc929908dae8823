//! Starts an embedded emulator, creates a stream, writes records with PutRecords and reads them
//! back from every shard with GetRecords: the emulator doing its job end to end.
//!
//! `cargo run --release --example emulator_demo -- --records 10000 --shards 4`

use std::time::Instant;

use anyhow::Context;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use clap::Parser;
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Parser)]
struct Args {
    /// Records to write.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Shards in the stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = EmbeddedEmulator::start(Config::embedded()).await?;
    println!("emulator listening at {}", emulator.endpoint_url());
    let client = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("demo", "demo", None, None, "static"))
            .endpoint_url(emulator.endpoint_url())
            .build(),
    );
    let stream = "demo";
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(args.shards)
        .send()
        .await?;
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await?;
        if summary
            .stream_description_summary()
            .context("summary")?
            .stream_status()
            == &StreamStatus::Active
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let mut written = 0;
    while written < args.records {
        let batch: Vec<_> = (written..args.records.min(written + 500))
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{i}"))
                    .data(Blob::new(format!("record {i}")))
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch))
            .send()
            .await?;
        anyhow::ensure!(
            out.failed_record_count() == Some(0),
            "some records were rejected"
        );
        written += out.records().len();
    }
    let put_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut read = 0;
    let shards = client.list_shards().stream_name(stream).send().await?;
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator
            .context("iterator")?;
        let mut in_shard = 0;
        loop {
            let out = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await?;
            in_shard += out.records().len();
            if out.records().is_empty() {
                break;
            }
            iterator = out
                .next_shard_iterator
                .context("open shards always have a next iterator")?;
        }
        println!("{}: {in_shard} records", shard.shard_id());
        read += in_shard;
    }
    let get_secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {written} records in {put_secs:.2}s ({:.0}/s), read {read} back in {get_secs:.2}s ({:.0}/s)",
        written as f64 / put_secs,
        read as f64 / get_secs
    );
    anyhow::ensure!(read == written, "read {read} records but wrote {written}");
    emulator.shutdown().await;
    Ok(())
}
