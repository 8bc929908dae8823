//! The quickstart: a whole KCL application on your machine, with no AWS account and no other
//! process.
//!
//! It starts the embedded emulator (Kinesis + DynamoDB), creates a stream, produces records,
//! runs a small fleet of workers that share the shards through a DynamoDB lease table, shows
//! a live per-shard view, splits a shard mid-run so the parent/child handling is visible, and
//! ends with a summary that checks the guarantees. It exits non-zero if any check fails.
//!
//! ```sh
//! cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --records 50000 --shards 8 --workers 4
//! cargo run --release --example quickstart -- --mode fanout                            # SubscribeToShard
//! cargo run --release --example quickstart -- --endpoint http://127.0.0.1:4567 --keep   # an emulator you started
//! cargo run --release --example quickstart -- --aws --app my-test-app                  # real AWS (default credential chain)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use clap::{Parser, ValueEnum};
use kcl_core::{
    FanOutConfig, InitialPosition, InitializationInput, LeaseLostInput, LeaseStore,
    LifecycleConfig, PollingConfig, ProcessRecordsInput, ProcessorError, RecordProcessor,
    SchedulerBuilder, ShardEndedInput, ShutdownRequestedInput,
};
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// GetRecords polling.
    Polling,
    /// Enhanced fan-out: SubscribeToShard pushes records to a registered consumer.
    Fanout,
}

#[derive(Debug, Parser)]
#[command(about = "Run a KCL application end to end on the embedded emulator")]
struct Args {
    /// Records to produce.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Shards in the stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Workers in the fleet.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Retrieval mode.
    #[arg(long, value_enum, default_value_t = Mode::Polling)]
    mode: Mode,
    /// Application name (also the lease table's name, and the stream's).
    #[arg(long, default_value = "quickstart")]
    app: String,
    /// Use this Kinesis + DynamoDB endpoint (e.g. the kcl-emulator binary) instead of the embedded one.
    #[arg(long, conflicts_with = "aws")]
    endpoint: Option<String>,
    /// Use AWS with the default credential chain and region.
    #[arg(long)]
    aws: bool,
    /// Do not split a shard mid-run.
    #[arg(long)]
    no_reshard: bool,
    /// Leave the stream and the lease table in place for inspection.
    #[arg(long)]
    keep: bool,
}

/// What the processors saw, for the live view and the summary.
#[derive(Debug, Default)]
struct Stats {
    /// Payload -> times processed.
    seen: Mutex<HashMap<u64, u32>>,
    per_shard: Mutex<BTreeMap<String, ShardStats>>,
    /// A global clock of processing events, to order parents and children.
    tick: AtomicU64,
    order_violations: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct ShardStats {
    processed: u64,
    millis_behind: i64,
    first_tick: Option<u64>,
    last_tick: u64,
    ended: bool,
}

struct Processor {
    shard_id: String,
    stats: Arc<Stats>,
    last: Option<(usize, String, u64)>,
}

#[async_trait]
impl RecordProcessor for Processor {
    async fn initialize(&mut self, _input: InitializationInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        for record in &input.records {
            let key = (
                record.sequence_number.len(),
                record.sequence_number.clone(),
                record.sub_sequence_number,
            );
            if self.last.as_ref().is_some_and(|last| *last >= key) {
                self.stats.order_violations.fetch_add(1, Ordering::Relaxed);
            }
            self.last = Some(key);
            let n: u64 = std::str::from_utf8(&record.data)?
                .split(':')
                .next()
                .unwrap_or_default()
                .parse()?;
            *self.stats.seen.lock().unwrap().entry(n).or_default() += 1;
        }
        let tick = self.stats.tick.fetch_add(1, Ordering::Relaxed);
        {
            let mut shards = self.stats.per_shard.lock().unwrap();
            let shard = shards.entry(self.shard_id.clone()).or_default();
            shard.processed += input.records.len() as u64;
            shard.millis_behind = input.millis_behind_latest.unwrap_or(0);
            if !input.records.is_empty() {
                shard.first_tick.get_or_insert(tick);
                shard.last_tick = tick;
            }
        }
        if !input.records.is_empty() {
            input.checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn lease_lost(&mut self, _input: LeaseLostInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        self.stats
            .per_shard
            .lock()
            .unwrap()
            .entry(self.shard_id.clone())
            .or_default()
            .ended = true;
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

async fn wait_active(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<()> {
    for _ in 0..1200 {
        let summary = kinesis
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
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("stream {stream} did not become ACTIVE")
}

fn short(seq: &str) -> String {
    if seq.len() > 12 {
        format!("…{}", &seq[seq.len() - 10..])
    } else {
        seq.to_owned()
    }
}

async fn view(store: &Arc<dyn LeaseStore>, stats: &Stats, produced: u64, total: usize, tty: bool) {
    let Ok(leases) = store.list_leases().await else {
        return;
    };
    let shards = stats.per_shard.lock().unwrap().clone();
    let unique = stats.seen.lock().unwrap().len();
    let mut out = String::new();
    if tty {
        out.push_str("\x1b[2J\x1b[H");
    }
    let bar = |done: usize| {
        let width = 30;
        let filled = (done * width / total.max(1)).min(width);
        format!("[{}{}]", "#".repeat(filled), " ".repeat(width - filled))
    };
    out.push_str(&format!(
        "produced  {} {produced}/{total}\n",
        bar(produced as usize)
    ));
    out.push_str(&format!("processed {} {unique}/{total}\n", bar(unique)));
    if tty {
        out.push_str(&format!(
            "\n{:<22} {:<10} {:<14} {:>10} {:>10}\n",
            "shard", "owner", "checkpoint", "records", "behind ms"
        ));
        for lease in &leases {
            let s = shards.get(&lease.lease_key).cloned().unwrap_or_default();
            out.push_str(&format!(
                "{:<22} {:<10} {:<14} {:>10} {:>10}\n",
                lease.lease_key,
                lease.lease_owner.as_deref().unwrap_or("-"),
                lease
                    .checkpoint
                    .as_ref()
                    .map_or("-".to_owned(), |c| short(&c.sequence_number)),
                s.processed,
                s.millis_behind
            ));
        }
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let tty = std::io::stdout().is_terminal();
    let emulator = if args.endpoint.is_none() && !args.aws {
        let mut config = Config::embedded();
        config.create_delay = Duration::from_millis(100);
        Some(EmbeddedEmulator::start(config).await?)
    } else {
        None
    };
    let endpoint = emulator
        .as_ref()
        .map(|e| e.endpoint_url())
        .or(args.endpoint.clone());
    println!(
        "Kinesis + DynamoDB at {}",
        endpoint.as_deref().unwrap_or("AWS")
    );
    let (kinesis, dynamodb) = kcl_examples::clients(endpoint.as_deref()).await;
    let stream = args.app.clone();
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(args.shards)
        .send()
        .await
        .context("creating the stream")?;
    wait_active(&kinesis, &stream).await?;
    println!(
        "stream {stream}: {} shards; fleet of {} workers reading by {}; lease table {}",
        args.shards,
        args.workers,
        match args.mode {
            Mode::Polling => "polling",
            Mode::Fanout => "enhanced fan-out",
        },
        args.app
    );

    let store: Arc<dyn LeaseStore> = Arc::new(kcl_lease::DynamoDbLeaseStore::new(
        dynamodb.clone(),
        args.app.clone(),
        kcl_lease::TableConfig::default(),
    ));
    store
        .initialize()
        .await
        .context("creating the lease table")?;
    let stats = Arc::new(Stats::default());
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for w in 0..args.workers {
        let stats_for = Arc::clone(&stats);
        let factory = move |shard_id: &str| Processor {
            shard_id: shard_id.to_owned(),
            stats: Arc::clone(&stats_for),
            last: None,
        };
        let mut polling = PollingConfig::default();
        polling.idle_time_between_reads = Duration::from_millis(200);
        let mut lifecycle = LifecycleConfig::default();
        lifecycle.parent_poll_interval = Duration::from_millis(200);
        lifecycle.shard_sync_interval = Duration::from_secs(2);
        let builder =
            SchedulerBuilder::new(args.app.clone(), stream.clone(), kinesis.clone(), factory)
                .lease_store(Arc::clone(&store))
                .worker_id(format!("worker-{w}"))
                .initial_position(InitialPosition::TrimHorizon)
                .failover_time(Duration::from_secs(3))
                .lifecycle(lifecycle);
        let scheduler = match args.mode {
            Mode::Polling => builder.polling(polling),
            Mode::Fanout => builder.fan_out(FanOutConfig::default()),
        }
        .build()?;
        handles.push(scheduler.handle());
        tasks.push(tokio::spawn(scheduler.run()));
    }

    // Produce in the background; split shard 0 halfway through.
    let produced = Arc::new(AtomicU64::new(0));
    let producer = {
        let (kinesis, stream, produced) = (kinesis.clone(), stream.clone(), Arc::clone(&produced));
        let (total, reshard) = (args.records, !args.no_reshard);
        tokio::spawn(async move {
            let mut split_done = !reshard;
            let mut n = 0usize;
            while n < total {
                if !split_done && n >= total / 2 {
                    let shards = kinesis.list_shards().stream_name(&stream).send().await?;
                    let first = &shards.shards()[0];
                    let range = first.hash_key_range().context("hash range")?;
                    let (start, end): (u128, u128) = (
                        range.starting_hash_key().parse()?,
                        range.ending_hash_key().parse()?,
                    );
                    kinesis
                        .split_shard()
                        .stream_name(&stream)
                        .shard_to_split(first.shard_id())
                        .new_starting_hash_key((start + (end - start) / 2).to_string())
                        .send()
                        .await?;
                    split_done = true;
                }
                let end = (n + 500).min(total);
                let entries = (n..end)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("user-{}", i % 997))
                            .data(Blob::new(format!("{i}:quickstart")))
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut pending = entries;
                while !pending.is_empty() {
                    let out = kinesis
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(pending.clone()))
                        .send()
                        .await?;
                    pending = out
                        .records()
                        .iter()
                        .zip(pending)
                        .filter(|(r, _)| r.error_code().is_some())
                        .map(|(_, e)| e)
                        .collect();
                }
                n = end;
                produced.store(n as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::Ok(())
        })
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(if tty { 250 } else { 2000 })).await;
        view(
            &store,
            &stats,
            produced.load(Ordering::Relaxed),
            args.records,
            tty,
        )
        .await;
        let done = producer.is_finished() && stats.seen.lock().unwrap().len() >= args.records;
        if done || Instant::now() > deadline {
            break;
        }
    }
    producer.await??;
    let mut graceful = true;
    for handle in &handles {
        graceful &= handle.shutdown().await;
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();

    // Lineage, from the stream itself: which shards are whose children.
    let shards = kinesis.list_shards().stream_name(&stream).send().await?;
    let per_shard = stats.per_shard.lock().unwrap().clone();
    let mut lineage_ok = true;
    for shard in shards.shards() {
        let Some(child) = per_shard.get(shard.shard_id()).and_then(|s| s.first_tick) else {
            continue;
        };
        for parent in shard
            .parent_shard_id()
            .into_iter()
            .chain(shard.adjacent_parent_shard_id())
        {
            if let Some(p) = per_shard.get(parent) {
                if p.first_tick.is_some() && p.last_tick >= child {
                    lineage_ok = false;
                }
                if !p.ended {
                    lineage_ok = false;
                }
            }
        }
    }
    let seen = stats.seen.lock().unwrap().clone();
    let missing = (0..args.records as u64)
        .filter(|n| !seen.contains_key(n))
        .count();
    let duplicates: usize = seen.values().filter(|c| **c > 1).count();
    let order_ok = stats.order_violations.load(Ordering::Relaxed) == 0;
    let resharded = shards.shards().len() > args.shards as usize;

    println!("\nsummary ({:.1}s)", elapsed.as_secs_f64());
    println!("  records produced:              {}", args.records);
    println!("  records processed:             {}", seen.len());
    println!("  records missing:               {missing}");
    println!("  records processed twice:       {duplicates}");
    println!(
        "  per-shard order kept:          {}",
        if order_ok { "yes" } else { "NO" }
    );
    if resharded {
        println!(
            "  parents finished before children: {}",
            if lineage_ok { "yes" } else { "NO" }
        );
    }
    println!(
        "  graceful shutdown:             {}",
        if graceful { "yes" } else { "NO" }
    );
    let mut cleanup = true;
    if !args.keep {
        cleanup &= kinesis
            .delete_stream()
            .stream_name(&stream)
            .enforce_consumer_deletion(true)
            .send()
            .await
            .is_ok();
        cleanup &= dynamodb
            .delete_table()
            .table_name(&args.app)
            .send()
            .await
            .is_ok();
    }
    if let Some(emulator) = emulator {
        emulator.shutdown().await;
    }
    let ok = missing == 0 && order_ok && lineage_ok && graceful && cleanup;
    println!(
        "{}",
        if ok {
            "all guarantees held"
        } else {
            "SOME GUARANTEES FAILED"
        }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
