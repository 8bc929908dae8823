//! `kcl-multilang`: the KCL MultiLangDaemon without a JVM.
//!
//! Reads a Java KCL properties file, holds shard leases like any worker, and runs one child
//! process per held shard (`executableName`), speaking the daemon's JSON-lines protocol, so an
//! amazon_kclpy (or Node, Ruby, ...) application runs unchanged:
//!
//! ```sh
//! kcl-multilang --properties app.properties
//! ```
//!
//! Credentials come from the default AWS chain (environment, profile, instance role);
//! `kinesisEndpoint` / `dynamoDBEndpoint` point the daemon at an emulator. SIGTERM or Ctrl-C
//! drains gracefully within `shutdownGraceMillis`: every child gets `shutdownRequested` (and
//! may checkpoint), then the leases are released.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::BehaviorVersion;
use clap::Parser;
use kcl_core::multilang::{self, MultiLangConfig};

/// How long the daemon waits at exit for its children's stderr to end (a grandchild that
/// inherited the pipe may hold it open indefinitely).
const STDERR_AT_EXIT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The KCL MultiLangDaemon: record processors in any language, no JVM"
)]
struct Args {
    /// The Java KCL properties file.
    #[arg(
        long,
        short = 'p',
        visible_alias = "properties-file",
        env = "KCL_PROPERTIES"
    )]
    properties: PathBuf,
    /// Log filter (e.g. `info`, `kcl_core=debug`); `RUST_LOG` works too.
    #[arg(long, env = "KCL_LOG_LEVEL")]
    log_level: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long, env = "KCL_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            tracing::error!("the shutdown did not complete within shutdownGraceMillis");
            ExitCode::FAILURE
        }
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("kcl-multilang: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the daemon; `Ok(graceful)` once it has shut down.
async fn run(args: &Args) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.properties)
        .map_err(|err| anyhow::anyhow!("reading {}: {err}", args.properties.display()))?;
    if let Some(addr) = args.metrics_addr {
        kcl_core::prometheus::serve(addr)?;
        tracing::info!(%addr, "serving Prometheus metrics");
    }
    let properties = multilang::properties::parse(&text);
    let config = MultiLangConfig::from_properties(&properties)
        .map_err(|err| anyhow::anyhow!("{}: {err}", args.properties.display()))?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut kinesis = aws_sdk_kinesis::config::Builder::from(&shared);
    if let Some(endpoint) = &config.kinesis_endpoint {
        kinesis = kinesis.endpoint_url(endpoint);
    }
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&shared);
    if let Some(endpoint) = &config.dynamodb_endpoint {
        dynamodb = dynamodb.endpoint_url(endpoint);
    }
    let scheduler = multilang::scheduler_builder(
        &config,
        aws_sdk_kinesis::Client::from_conf(kinesis.build()),
        aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
    )
    .build()?;
    tracing::info!(
        worker = scheduler.worker_id(),
        application = %config.application_name,
        stream = config.stream_arn.as_deref().or(config.stream_name.as_deref()).unwrap_or_default(),
        executable = ?config.executable,
        "kcl-multilang starting"
    );
    let handle = scheduler.handle();
    let signals = tokio::spawn(kcl_core::shutdown_on_signal(handle));
    let outcome = scheduler.run().await;
    // Children exit during the shutdown, some flushing a last stderr line as they go: let it
    // reach the log before this process ends.
    if !multilang::forward_remaining_stderr(STDERR_AT_EXIT).await {
        tracing::warn!("some child's stderr was still open at exit; the rest of it is not logged");
    }
    outcome?;
    Ok(signals.await.unwrap_or(false))
}
