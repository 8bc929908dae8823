//! Emulator benchmark: concurrent PutRecords ingest, GetRecords drain, and put -> GetRecords
//! latency, over HTTP through `aws-sdk-kinesis`. Prints one table.
//!
//! ```sh
//! cargo run --release --example bench_emulator                    # embedded, in memory and durable
//! cargo run --release --example bench_emulator -- --endpoint http://127.0.0.1:4567
//! cargo run --release --example bench_emulator -- --quick         # seconds, tiny sizes (CI)
//! cargo run --release --example bench_emulator -- --canned        # the load client's own ceiling
//! ```

mod bench;

use clap::Parser;
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Parser)]
struct Args {
    /// A Kinesis-compatible endpoint to measure instead of the embedded emulator.
    #[arg(long)]
    endpoint: Option<String>,
    /// How long each ingest run lasts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Shards in the benchmark stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Bytes per record.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per PutRecords call.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Tiny sizes and sub-second runs, to check the benchmark still works.
    #[arg(long)]
    quick: bool,
    /// Measure the load client alone, against a server that answers every PutRecords with a
    /// canned success body without parsing it: the ceiling the other figures cannot exceed.
    #[arg(long)]
    canned: bool,
}

impl Args {
    fn workload(&self) -> bench::Workload {
        bench::Workload {
            seconds: if self.quick { 0.3 } else { self.seconds },
            shards: if self.quick {
                self.shards.min(2)
            } else {
                self.shards
            },
            record_size: self.record_size,
            batch: self.batch,
            latency_samples: if self.quick { 20 } else { 500 },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workload = args.workload();
    let mut rows = Vec::new();
    if args.canned {
        let endpoint = bench::canned_server(workload.batch).await?;
        for connections in [1, 4] {
            let (mut row, _) = bench::ingest(
                &endpoint,
                "canned",
                connections,
                &workload,
                workload.seconds,
            )
            .await?;
            row.target = "load client vs canned server".to_owned();
            rows.push(row);
        }
    } else if let Some(endpoint) = &args.endpoint {
        bench::run_suite(endpoint, "external", &workload, &mut rows).await?;
    } else {
        let memory = EmbeddedEmulator::start(Config::embedded()).await?;
        bench::run_suite(
            &memory.endpoint_url(),
            "emulator (memory)",
            &workload,
            &mut rows,
        )
        .await?;
        memory.shutdown().await;
        let dir = tempfile::tempdir()?;
        let mut config = Config::embedded();
        config.data_dir = Some(dir.path().to_owned());
        let durable = EmbeddedEmulator::start(config).await?;
        bench::run_suite(
            &durable.endpoint_url(),
            "emulator (durable)",
            &workload,
            &mut rows,
        )
        .await?;
        durable.shutdown().await;
    }
    bench::print_table("emulator benchmark", &rows);
    Ok(())
}
