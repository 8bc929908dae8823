//! A load generator for a Kinesis stream: a steady rate of records of a chosen size over a
//! chosen spread of partition keys, optionally packed KPL-style (many user records in one
//! Kinesis record, which the KCL de-aggregates transparently).
//!
//! ```sh
//! # against a running emulator (cargo run --release -p kcl-emulator)
//! cargo run --release --example producer -- --endpoint http://127.0.0.1:4567 --stream demo --create 4 --rate 5000 --records 100000
//! # against AWS (default credential chain and region)
//! cargo run --release --example producer -- --stream my-stream --rate 100 --aggregate
//! ```
//! Every payload is `<sequence>:<filler>` so consumers can check order and completeness.

use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use clap::Parser;
use md5::{Digest, Md5};

#[derive(Debug, Parser)]
struct Args {
    /// Kinesis endpoint (e.g. the emulator); without it, AWS with the default credential chain.
    #[arg(long, env = "KINESIS_ENDPOINT")]
    endpoint: Option<String>,
    /// Stream to write to.
    #[arg(long, env = "KINESIS_STREAM")]
    stream: String,
    /// Create the stream with this many shards if it does not exist.
    #[arg(long)]
    create: Option<i32>,
    /// User records per second; 0 sends as fast as the stream accepts.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// User records to send in total; 0 sends until interrupted.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Bytes per user record (at least enough for the sequence prefix).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Number of distinct partition keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Pack user records KPL-style into aggregated Kinesis records.
    #[arg(long)]
    aggregate: bool,
    /// User records per aggregated record.
    #[arg(long, default_value_t = 100)]
    aggregate_count: usize,
}

/// The magic bytes that open a KPL aggregated record.
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn length_delimited(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes user records `(partition key, data)` as one KPL aggregated record: magic, the
/// `AggregatedRecord` protobuf (partition key table, records), and the MD5 of the protobuf.
fn aggregate(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut protobuf = Vec::new();
    for (key, _) in records {
        if !keys.contains(&key.as_str()) {
            keys.push(key);
        }
    }
    for key in &keys {
        length_delimited(&mut protobuf, 1, key.as_bytes());
    }
    for (key, data) in records {
        let mut record = Vec::new();
        varint(&mut record, 1 << 3);
        varint(
            &mut record,
            keys.iter().position(|k| k == key).unwrap_or(0) as u64,
        );
        length_delimited(&mut record, 3, data);
        length_delimited(&mut protobuf, 3, &record);
    }
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(&protobuf);
    out.extend_from_slice(&Md5::digest(&protobuf));
    out
}

async fn client(endpoint: Option<&str>) -> aws_sdk_kinesis::Client {
    match endpoint {
        Some(endpoint) => {
            use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
            aws_sdk_kinesis::Client::from_conf(
                aws_sdk_kinesis::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(
                        std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
                    ))
                    .credentials_provider(Credentials::new("local", "local", None, None, "static"))
                    .endpoint_url(endpoint)
                    .build(),
            )
        }
        None => aws_sdk_kinesis::Client::new(&aws_config::load_from_env().await),
    }
}

async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: Option<i32>,
) -> anyhow::Result<()> {
    let exists = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .is_ok();
    if !exists {
        let shards = shards.with_context(|| {
            format!("stream {name} does not exist; pass --create N to create it")
        })?;
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await?;
    }
    for _ in 0..600 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await?;
        if summary
            .stream_description_summary()
            .context("summary")?
            .stream_status()
            == &StreamStatus::Active
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("stream {name} did not become ACTIVE")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = client(args.endpoint.as_deref()).await;
    ensure_stream(&client, &args.stream, args.create).await?;
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut kinesis_records: u64 = 0;
    let mut retried: u64 = 0;
    let mut last_report = Instant::now();
    let per_call = if args.aggregate {
        500 * args.aggregate_count
    } else {
        500
    };
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    while args.records == 0 || sent < args.records {
        let remaining = if args.records == 0 {
            per_call as u64
        } else {
            args.records - sent
        };
        let batch_size = remaining.min(per_call as u64);
        let users: Vec<(String, Vec<u8>)> = (sent..sent + batch_size)
            .map(|n| {
                let mut data = format!("{n}:").into_bytes();
                data.resize(args.size.max(data.len()), b'x');
                (format!("key-{}", n % args.keys.max(1)), data)
            })
            .collect();
        let mut entries: Vec<PutRecordsRequestEntry> = if args.aggregate {
            users
                .chunks(args.aggregate_count.max(1))
                .map(|chunk| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(&chunk[0].0)
                        .data(Blob::new(aggregate(chunk)))
                        .build()
                })
                .collect::<Result<_, _>>()?
        } else {
            users
                .iter()
                .map(|(k, d)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(k)
                        .data(Blob::new(d.clone()))
                        .build()
                })
                .collect::<Result<_, _>>()?
        };
        // Resend only the entries that failed (throttling), keeping the rest acknowledged.
        while !entries.is_empty() {
            let out = client
                .put_records()
                .stream_name(&args.stream)
                .set_records(Some(entries.clone()))
                .send()
                .await?;
            let failed: Vec<PutRecordsRequestEntry> = out
                .records()
                .iter()
                .zip(entries)
                .filter(|(result, _)| result.error_code().is_some())
                .map(|(_, entry)| entry)
                .collect();
            kinesis_records += (out.records().len() - failed.len()) as u64;
            if !failed.is_empty() {
                retried += failed.len() as u64;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            entries = failed;
        }
        sent += batch_size;
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = &mut stop => break,
                }
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "sent {sent} records ({:.0}/s)",
                sent as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "produced {sent} user records in {kinesis_records} Kinesis records to {} in {secs:.2}s ({:.0} records/s, {retried} retried)",
        args.stream,
        sent as f64 / secs
    );
    Ok(())
}
