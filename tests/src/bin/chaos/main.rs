//! `chaos`: a KCL fleet on Docker under faults, and the checks of what it delivered.
//!
//! `chaos run` (on the host) builds a `FROM scratch` image holding this very binary and the
//! shared libraries it links, creates a Docker network, and starts the emulator (durable, on a
//! directory mounted into its container), a producer and N workers, each in its own container.
//! It then injects a seeded schedule of faults (kills, partitions, pauses, an emulator crash,
//! resharding, rolling restarts), drains, and checks the logs the containers left: every
//! acknowledged record processed, order per key within each processor, checkpoints never going
//! backwards and never written by a worker not holding the lease.
//!
//! The other subcommands are what the containers run: `emulator`, `worker`, `producer`.
//!
//! ```sh
//! cargo run --release -p kcl-integration-tests --bin chaos -- run --seeds 1..20 --duration 300s
//! ```

mod docker;
mod logs;
mod producer;
mod report;
mod runner;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chaos", about = "A KCL fleet on Docker under seeded faults")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run seeded fault schedules against a fleet in containers and check the outcome.
    Run(runner::RunArgs),
    /// Run the checks again on the logs a run kept.
    Report(runner::ReportArgs),
    /// (In a container) the emulator in durable mode.
    Emulator(EmulatorArgs),
    /// (In a container) one KCL worker that logs what it processes and every lease write.
    Worker(worker::WorkerArgs),
    /// (In a container) a producer that logs every acknowledged record.
    Producer(producer::ProducerArgs),
}

#[derive(Debug, clap::Args)]
struct EmulatorArgs {
    /// Directory of the durable stores.
    #[arg(long, default_value = "/data")]
    data_dir: std::path::PathBuf,
    /// Port to listen on, on every interface of the container.
    #[arg(long, default_value_t = 4567)]
    port: u16,
}

async fn emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let mut config = kcl_emulator::Config::default();
    config.host = "0.0.0.0".to_owned();
    config.port = args.port;
    config.data_dir = Some(args.data_dir);
    let emulator = kcl_emulator::EmbeddedEmulator::start(config).await?;
    println!("kcl-emulator listening on {}", emulator.endpoint_url());
    let token = emulator.shutdown_token();
    tokio::spawn(async move {
        worker::terminate_signal().await;
        token.cancel();
    });
    emulator.wait().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => runner::run(args).await,
            Command::Report(args) => runner::report(args),
            Command::Emulator(args) => emulator(args).await.map(|()| true),
            Command::Worker(args) => worker::run(args).await.map(|()| true),
            Command::Producer(args) => producer::run(args).await.map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("chaos: {err:#}");
            ExitCode::from(2)
        }
    }
}
