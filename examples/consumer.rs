//! A standalone worker for a real deployment: run several copies (on one machine or many) and
//! they share the stream's shards through the lease table. Ctrl-C or SIGTERM shuts a worker
//! down gracefully: final checkpoints, then its leases go to the others at once.
//!
//! ```sh
//! # against an emulator you started (cargo run --release -p kcl-emulator)
//! cargo run --release --example consumer -- --stream demo --app demo-app --endpoint http://127.0.0.1:4567
//! # against AWS: default credential chain and region
//! cargo run --release --example consumer -- --stream my-stream --app my-app
//! # enhanced fan-out: the consumer (named after the application) is registered if missing
//! cargo run --release --example consumer -- --stream my-stream --app my-app --mode fanout
//! ```
//! Every flag can also come from the environment (`KCL_STREAM`, `KCL_APP`, `KCL_ENDPOINT`, ...).

use std::time::Duration;

use async_trait::async_trait;
use clap::{Parser, ValueEnum};
use kcl_core::{
    FanOutConfig, InitialPosition, InitializationInput, LeaseLostInput, ProcessRecordsInput,
    ProcessorError, RecordProcessor, SchedulerBuilder, ShardEndedInput, ShutdownRequestedInput,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Start {
    Latest,
    TrimHorizon,
}

#[derive(Debug, Parser)]
struct Args {
    /// Stream name or ARN.
    #[arg(long, env = "KCL_STREAM")]
    stream: String,
    /// Application name; also the lease table's name.
    #[arg(long, env = "KCL_APP")]
    app: String,
    /// Kinesis and DynamoDB endpoint (e.g. the emulator); without it, AWS.
    #[arg(long, env = "KCL_ENDPOINT")]
    endpoint: Option<String>,
    /// Where shards without a checkpoint start.
    #[arg(long, env = "KCL_INITIAL_POSITION", value_enum, default_value_t = Start::TrimHorizon)]
    initial_position: Start,
    /// This worker's id (default: host, pid and a random suffix).
    #[arg(long, env = "KCL_WORKER_ID")]
    worker_id: Option<String>,
    /// Lease failover time, in seconds.
    #[arg(long, env = "KCL_FAILOVER_SECS", default_value_t = 10)]
    failover_secs: u64,
    /// Retrieval mode: GetRecords polling, or enhanced fan-out (SubscribeToShard).
    #[arg(long, env = "KCL_MODE", value_enum, default_value_t = Mode::Polling)]
    mode: Mode,
    /// Enhanced fan-out consumer name (default: the application name).
    #[arg(long, env = "KCL_CONSUMER_NAME")]
    consumer_name: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long, env = "KCL_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve /healthz, /ready, /leases and /metrics on this address (e.g. 127.0.0.1:9101), for
    /// probes; a processor call running longer than 60 s makes the worker unready.
    #[arg(long, env = "KCL_ADMIN_ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Polling,
    Fanout,
}

/// Prints each record and checkpoints after every batch.
struct Printer {
    shard_id: String,
}

#[async_trait]
impl RecordProcessor for Printer {
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        println!("{}: starting at {}", input.shard_id, input.checkpoint);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        for record in &input.records {
            println!(
                "{} {} {}",
                self.shard_id,
                record.sequence_number,
                String::from_utf8_lossy(&record.data)
            );
        }
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn lease_lost(&mut self, _input: LeaseLostInput) -> Result<(), ProcessorError> {
        println!("{}: lease lost", self.shard_id);
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        println!("{}: shard ended", self.shard_id);
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
    if let Some(addr) = args.metrics_addr {
        kcl_core::prometheus::serve(addr)?;
        eprintln!("metrics at http://{addr}/metrics");
    }
    let (kinesis, dynamodb) = kcl_examples::clients(args.endpoint.as_deref()).await;
    let mut builder = SchedulerBuilder::new(
        args.app.clone(),
        args.stream.clone(),
        kinesis,
        |shard_id: &str| Printer {
            shard_id: shard_id.to_owned(),
        },
    )
    .dynamodb(dynamodb)
    .failover_time(Duration::from_secs(args.failover_secs))
    .initial_position(match args.initial_position {
        Start::Latest => InitialPosition::Latest,
        Start::TrimHorizon => InitialPosition::TrimHorizon,
    });
    if let Some(id) = &args.worker_id {
        builder = builder.worker_id(id.clone());
    }
    if let Mode::Fanout = args.mode {
        let mut fan_out = FanOutConfig::default();
        fan_out.consumer_name = args.consumer_name.clone();
        builder = builder.fan_out(fan_out);
    }
    let scheduler = builder.build()?;
    let _admin = match args.admin_addr {
        Some(addr) => {
            let server =
                kcl_core::admin::serve(addr, scheduler.status(), Duration::from_secs(60)).await?;
            eprintln!("admin endpoints at http://{}/ready", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let handle = scheduler.handle();
    let shutdown = tokio::spawn(kcl_core::shutdown_on_signal(handle));
    eprintln!(
        "worker {} consuming {} for {} ({:?})",
        scheduler.worker_id(),
        args.stream,
        args.app,
        args.mode
    );
    scheduler.run().await?;
    let graceful = shutdown.await.unwrap_or(false);
    eprintln!("stopped{}", if graceful { " gracefully" } else { "" });
    Ok(())
}
