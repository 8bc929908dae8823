//! A minimal enhanced fan-out consumer: records are pushed to this application over
//! SubscribeToShard, with its own 2 MiB/s per shard, instead of being polled.
//!
//! ```sh
//! # on the embedded emulator: creates a stream, puts a few records, prints them, stops
//! cargo run --release --example fanout
//! # against an endpoint you run (the kcl-emulator binary) or AWS (no --endpoint)
//! cargo run --release --example fanout -- --endpoint http://127.0.0.1:4567 --stream demo
//! ```
//!
//! Everything fan-out specific is the one `.fan_out(...)` line: the worker registers the
//! consumer (named after the application unless configured) or reuses it, and subscribes to
//! every shard it holds a lease on. Leases and checkpoints are the same as with polling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use clap::Parser;
use kcl_core::{
    FanOutConfig, InitialPosition, ProcessRecordsInput, ProcessorError, RecordProcessor,
    SchedulerBuilder, ShardEndedInput, ShutdownRequestedInput,
};

#[derive(Debug, Parser)]
struct Args {
    /// Kinesis + DynamoDB endpoint; without it (and without --aws), an embedded emulator.
    #[arg(long)]
    endpoint: Option<String>,
    /// Use AWS (default credential chain and region) instead of the embedded emulator.
    #[arg(long, conflicts_with = "endpoint")]
    aws: bool,
    /// Stream to read; on the embedded emulator it is created and filled with --records.
    #[arg(long, default_value = "fanout-demo")]
    stream: String,
    /// Application (lease table and consumer) name.
    #[arg(long, default_value = "fanout-demo-app")]
    app: String,
    /// Records to put when the stream is created here.
    #[arg(long, default_value_t = 10)]
    records: usize,
}

/// Prints records and checkpoints after each batch; counts them for the demo's exit.
struct Printer {
    seen: Arc<AtomicUsize>,
}

#[async_trait]
impl RecordProcessor for Printer {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        for record in &input.records {
            println!(
                "{} (behind by {} ms)",
                String::from_utf8_lossy(&record.data),
                input.millis_behind_latest.unwrap_or(0)
            );
        }
        self.seen.fetch_add(input.records.len(), Ordering::Relaxed);
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError> {
        input.checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let emulator = if args.endpoint.is_none() && !args.aws {
        Some(kcl_emulator::EmbeddedEmulator::start(kcl_emulator::Config::embedded()).await?)
    } else {
        None
    };
    let endpoint = emulator
        .as_ref()
        .map(|e| e.endpoint_url())
        .or(args.endpoint);
    let (kinesis, dynamodb) = kcl_examples::clients(endpoint.as_deref()).await;
    if emulator.is_some() {
        create_and_fill(&kinesis, &args.stream, args.records).await?;
    }

    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let scheduler =
        SchedulerBuilder::new(&args.app, &args.stream, kinesis, move |_: &str| Printer {
            seen: Arc::clone(&counter),
        })
        .dynamodb(dynamodb)
        .initial_position(InitialPosition::TrimHorizon)
        .fan_out(FanOutConfig::default())
        .build()?;
    let handle = scheduler.handle();
    let worker = tokio::spawn(scheduler.run());
    if emulator.is_some() {
        // The demo ends once everything it put has been pushed and processed.
        while seen.load(Ordering::Relaxed) < args.records {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        handle.shutdown().await;
    } else {
        kcl_core::shutdown_on_signal(handle).await;
    }
    worker.await??;
    println!(
        "processed {} records by enhanced fan-out",
        seen.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn create_and_fill(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    records: usize,
) -> anyhow::Result<()> {
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(2)
        .send()
        .await
        .context("creating the stream")?;
    loop {
        let described = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await?;
        let status = described
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(aws_sdk_kinesis::types::StreamStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..records {
        kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(format!("key-{i}"))
            .data(Blob::new(format!("record {i}")))
            .send()
            .await
            .context("putting a record")?;
    }
    Ok(())
}
