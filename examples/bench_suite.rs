//! The whole benchmark suite in one command, printed as one table with the machine and date:
//! emulator ingest, drain and latency (in memory and durable), draining a Kinesis queue with
//! concurrent receivers (in memory and durable), CreateStream latency as durable metadata
//! grows, the conditional UpdateItem rate
//! of its DynamoDB API, the load client's own ceiling, and the KCL rows (end-to-end records/s
//! with a no-op processor, put -> process_records latency, failover time, lease-table writes
//! per lease, memory per lease), each in polling and fan-out mode where that applies.
//!
//! ```sh
//! cargo run --release --example bench_suite            # a few minutes
//! cargo run --release --example bench_suite -- --quick # seconds, tiny sizes (what CI runs)
//! ```
//! `--endpoint URL` adds the Kinesis rows against another Kinesis-compatible server to the
//! table; `bench_compare` runs them against the usual peers with ratios.

mod bench;

use std::time::Duration;

use bench::kcl::{self, Clients, Mode};
use clap::Parser;
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Parser)]
struct Args {
    /// Tiny sizes and short runs, to check that every workload still works.
    #[arg(long)]
    quick: bool,
    /// Seconds per ingest run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Run only the emulator rows or only the KCL rows (e.g. to profile one part).
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Also run the Kinesis rows (ingest, drain, latency) against this Kinesis-compatible
    /// endpoint, in the same table; `bench_compare` does it for the usual peers.
    #[arg(long)]
    endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Kinesis and DynamoDB API rows.
    Emulator,
    /// Worker rows.
    Kcl,
    /// Only the CreateStream latency row of the emulator section.
    Metadata,
    /// Only the queue drain rows of the emulator section (in memory and durable).
    Queues,
    /// Only the conditional UpdateItem rows of the minimal raw client (in memory and durable).
    Updates,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let quick = args.quick;
    let workload = bench::Workload {
        seconds: if quick { 0.3 } else { args.seconds },
        shards: if quick { 2 } else { 4 },
        record_size: 100,
        batch: 500,
        latency_samples: if quick { 20 } else { 500 },
    };
    let mut config = Config::embedded();
    config.shard_limit = 5000;
    let memory = EmbeddedEmulator::start(config.clone()).await?;
    let clients = Clients::new(&memory.endpoint_url()).await;
    let mut rows = Vec::new();
    let kcl_rows = args.only.is_none() || args.only == Some(Section::Kcl);
    // First, while the process is small: later workloads leave the allocator holding memory
    // that would hide the worker's growth.
    let rss = if kcl_rows {
        Some(kcl::rss_per_leases(&clients, if quick { 20 } else { 1000 }).await?)
    } else {
        None
    };
    if args.only.is_none() || args.only == Some(Section::Emulator) {
        emulator_rows(&memory, &config, &clients, &workload, &mut rows).await?;
        metadata_rows(&config, quick, &mut rows).await?;
        if let Some(endpoint) = &args.endpoint {
            bench::run_suite(endpoint, endpoint, &workload, &mut rows).await?;
        }
    }
    if args.only == Some(Section::Metadata) {
        metadata_rows(&config, quick, &mut rows).await?;
    }
    if args.only == Some(Section::Queues) {
        queue_rows(&memory, &config, &workload, &mut rows).await?;
    }
    if args.only == Some(Section::Updates) {
        let run = Duration::from_secs_f64(workload.seconds);
        let mut row =
            kcl::conditional_updates_raw(&clients, &memory.endpoint_url(), 4, run).await?;
        row.target = "emulator (memory)".to_owned();
        rows.push(row);
        let dir = tempfile::tempdir()?;
        let durable = start_durable(&config, dir.path()).await?;
        rows.push(durable_raw_updates(&durable, run).await?);
        durable.shutdown().await;
    }
    if kcl_rows {
        worker_rows(quick, &clients, &workload, &mut rows).await?;
        rows.extend(rss.map(|mut row| {
            row.target = "KCL worker + emulator".to_owned();
            row
        }));
    }
    memory.shutdown().await;
    bench::print_table("benchmark suite", &rows);
    Ok(())
}

/// The emulator's Kinesis API in memory and durable, the load client's ceiling, and the
/// conditional UpdateItem rate of its DynamoDB API.
async fn emulator_rows(
    memory: &EmbeddedEmulator,
    config: &Config,
    clients: &Clients,
    workload: &bench::Workload,
    rows: &mut Vec<bench::Row>,
) -> anyhow::Result<()> {
    bench::run_suite(&memory.endpoint_url(), "emulator (memory)", workload, rows).await?;
    rows.push(queue_drain(memory, "emulator (memory)", workload).await?);
    let dir = tempfile::tempdir()?;
    let durable = start_durable(config, dir.path()).await?;
    bench::run_suite(
        &durable.endpoint_url(),
        "emulator (durable)",
        workload,
        rows,
    )
    .await?;
    rows.push(queue_drain(&durable, "emulator (durable)", workload).await?);
    let update_run = Duration::from_secs_f64(workload.seconds);
    let durable_updates = durable_raw_updates(&durable, update_run).await?;
    durable.shutdown().await;
    let canned = bench::canned_server(workload.batch).await?;
    let (mut row, _) = bench::ingest(&canned, "canned", 4, workload, workload.seconds).await?;
    row.target = "load client vs canned server".to_owned();
    rows.push(row);
    for connections in [1, 4] {
        let mut row = kcl::conditional_updates(clients, connections, update_run).await?;
        row.target = "emulator (memory)".to_owned();
        rows.push(row);
    }
    rows.push(kcl::conditional_updates_client_ceiling(4, update_run).await?);
    let mut row =
        kcl::conditional_updates_raw(clients, &memory.endpoint_url(), 4, update_run).await?;
    row.target = "emulator (memory)".to_owned();
    rows.push(row);
    rows.push(durable_updates);
    Ok(())
}

/// Conditional UpdateItem from the minimal client against a durable emulator: each update
/// waits for the write-ahead log's group commit.
async fn durable_raw_updates(
    durable: &EmbeddedEmulator,
    run: Duration,
) -> anyhow::Result<bench::Row> {
    let clients = Clients::new(&durable.endpoint_url()).await;
    let mut row = kcl::conditional_updates_raw(&clients, &durable.endpoint_url(), 4, run).await?;
    row.target = "emulator (durable)".to_owned();
    Ok(row)
}

/// A durable emulator keeping its data in `dir`.
async fn start_durable(config: &Config, dir: &std::path::Path) -> anyhow::Result<EmbeddedEmulator> {
    let mut durable_config = config.clone();
    durable_config.data_dir = Some(dir.to_owned());
    Ok(EmbeddedEmulator::start(durable_config).await?)
}

/// The queue drain row against `emulator`: 4 receivers.
async fn queue_drain(
    emulator: &EmbeddedEmulator,
    target: &str,
    workload: &bench::Workload,
) -> anyhow::Result<bench::Row> {
    let backlog = if workload.seconds < 1.0 { 200 } else { 20_000 };
    bench::queues::drain(&emulator.endpoint_url(), target, 4, backlog).await
}

/// The queue drain rows alone, in memory and durable.
async fn queue_rows(
    memory: &EmbeddedEmulator,
    config: &Config,
    workload: &bench::Workload,
    rows: &mut Vec<bench::Row>,
) -> anyhow::Result<()> {
    rows.push(queue_drain(memory, "emulator (memory)", workload).await?);
    let dir = tempfile::tempdir()?;
    let durable = start_durable(config, dir.path()).await?;
    rows.push(queue_drain(&durable, "emulator (durable)", workload).await?);
    durable.shutdown().await;
    Ok(())
}

/// CreateStream latency at a few stream counts, on a fresh durable emulator (so the streams
/// counted are only the ones this row creates).
async fn metadata_rows(
    config: &Config,
    quick: bool,
    rows: &mut Vec<bench::Row>,
) -> anyhow::Result<()> {
    let (counts, window) = if quick {
        (vec![20, 50], 10)
    } else {
        (vec![1000, 5000], 100)
    };
    let dir = tempfile::tempdir()?;
    let mut meta_config = config.clone();
    meta_config.data_dir = Some(dir.path().to_owned());
    meta_config.shard_limit = counts.iter().copied().max().unwrap_or(0) as u32;
    let meta = EmbeddedEmulator::start(meta_config).await?;
    rows.extend(
        bench::metadata::create_stream_latency(
            &meta.endpoint_url(),
            "emulator (durable)",
            &counts,
            window,
        )
        .await?,
    );
    meta.shutdown().await;
    Ok(())
}

/// The KCL through the emulator.
async fn worker_rows(
    quick: bool,
    clients: &Clients,
    workload: &bench::Workload,
    rows: &mut Vec<bench::Row>,
) -> anyhow::Result<()> {
    let first = rows.len();
    let backlog = if quick { 2_000 } else { 400_000 };
    for shards in [4, 16] {
        for mode in [Mode::Polling, Mode::FanOut] {
            rows.push(kcl::throughput(clients, shards, mode, backlog).await?);
        }
    }
    for mode in [Mode::Polling, Mode::FanOut] {
        rows.push(kcl::latency(clients, mode, workload.latency_samples).await?);
    }
    let (failover, kills) = if quick {
        (Duration::from_secs(1), 1)
    } else {
        (Duration::from_secs(5), 4)
    };
    rows.push(kcl::failover(clients, failover, kills).await?);
    // At least one renewal period (failover / 3) even in quick mode.
    let writes_run = if quick {
        Duration::from_secs(4)
    } else {
        Duration::from_secs(30)
    };
    rows.push(kcl::lease_writes(clients, 16, writes_run).await?);
    let (leases, failover, steal) = if quick {
        (50, Duration::from_secs(1), 13)
    } else {
        (1000, Duration::from_secs(10), 50)
    };
    rows.extend(kcl::lease_acquisition(clients, leases, 4, failover, steal).await?);
    for row in &mut rows[first..] {
        row.target = "KCL worker + emulator".to_owned();
    }
    Ok(())
}
