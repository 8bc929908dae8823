//! Fleet coordination benchmarks, printed as one table with the machine and date: failover
//! after a worker or the leader is killed, DynamoDB capacity units per minute beside the Java
//! KCL 3 design's, cold-start balance, a rolling deploy, and skewed load by strategy. KCL 3
//! rows, with the 2.x taker's beside them where the comparison means something.
//!
//! ```sh
//! cargo run --release --example bench_fleet              # about 15 minutes
//! cargo run --release --example bench_fleet -- --quick   # a few minutes, small sizes
//! cargo run --release --example bench_fleet -- --only capacity
//! ```

mod bench;

use std::time::Duration;

use bench::fleet::{self, Victim};
use bench::kcl::Clients;
use clap::Parser;
use kcl_emulator::{Config, EmbeddedEmulator};
use kcl_lease::{AssignmentStrategy, CoordinationMode};

#[derive(Debug, Parser)]
struct Args {
    /// Fewer kills, fewer leases, shorter runs.
    #[arg(long)]
    quick: bool,
    /// Run one group of rows.
    #[arg(long, value_enum)]
    only: Option<Group>,
    /// Also run the 2.x taker's rows, for comparison.
    #[arg(long)]
    with_kcl2: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Group {
    /// Worker and leader failover.
    Failover,
    /// DynamoDB capacity units per minute.
    Capacity,
    /// Cold-start balance.
    ColdStart,
    /// Rolling deploy.
    Deploy,
    /// Skewed load.
    Skew,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs only when asked for (RUST_LOG), on stderr, so the table stays clean.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut config = Config::embedded();
    config.shard_limit = 10_000;
    let emulator = EmbeddedEmulator::start(config).await?;
    let clients = Clients::new(&emulator.endpoint_url()).await;
    let run = |group: Group| args.only.is_none() || args.only == Some(group);
    let mut modes = vec![CoordinationMode::Kcl3];
    if args.with_kcl2 {
        modes.push(CoordinationMode::Kcl2);
    }
    let failover = Duration::from_secs(10);
    let (kills, leases, steady) = if args.quick {
        (2, 100, Duration::from_secs(20))
    } else {
        (8, 1000, Duration::from_secs(60))
    };
    let mut rows = Vec::new();
    if run(Group::Failover) {
        for &mode in &modes {
            rows.push(fleet::failover(&clients, mode, Victim::Worker, failover, kills).await?);
        }
        rows.push(
            fleet::failover(
                &clients,
                CoordinationMode::Kcl3,
                Victim::Leader,
                failover,
                kills / 2 + 2,
            )
            .await?,
        );
    }
    if run(Group::Capacity) {
        for &mode in &modes {
            rows.push(fleet::capacity(&clients, mode, 4, leases, steady).await?);
        }
    }
    if run(Group::ColdStart) {
        for &mode in &modes {
            rows.push(fleet::cold_start(&clients, mode, 4, leases).await?);
        }
    }
    if run(Group::Deploy) {
        for &mode in &modes {
            rows.push(fleet::rolling_deploy(&clients, mode).await?);
        }
    }
    if run(Group::Skew) {
        let window = if args.quick {
            Duration::from_secs(15)
        } else {
            Duration::from_secs(40)
        };
        for strategy in [
            AssignmentStrategy::Utilisation,
            AssignmentStrategy::LeaseCount,
        ] {
            rows.push(fleet::skewed_load(&clients, strategy, window).await?);
        }
    }
    bench::print_table("Fleet coordination", &rows);
    emulator.shutdown().await;
    Ok(())
}
