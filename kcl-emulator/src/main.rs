//! `kcl-emulator`: a local Kinesis Data Streams + DynamoDB server.
//!
//! Every flag can also be set from the environment (`KCL_EMULATOR_*`), which is how the
//! container image is configured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Parser)]
#[command(
    name = "kcl-emulator",
    version,
    about = "A local Kinesis Data Streams and DynamoDB emulator"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "KCL_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "KCL_EMULATOR_PORT", default_value_t = 4567)]
    port: u16,
    /// Directory for durable data; without it everything is kept in memory.
    #[arg(long, env = "KCL_EMULATOR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// How long streams, consumers and tables stay CREATING, in milliseconds.
    #[arg(long, env = "KCL_EMULATOR_CREATE_DELAY_MS", default_value_t = 50)]
    create_delay_ms: u64,
    /// How long a stream stays UPDATING after a reshard or settings change, in milliseconds.
    #[arg(long, env = "KCL_EMULATOR_UPDATE_DELAY_MS", default_value_t = 50)]
    update_delay_ms: u64,
    /// How long streams and tables stay DELETING, in milliseconds.
    #[arg(long, env = "KCL_EMULATOR_DELETE_DELAY_MS", default_value_t = 50)]
    delete_delay_ms: u64,
    /// Most open shards across all streams.
    #[arg(long, env = "KCL_EMULATOR_SHARD_LIMIT", default_value_t = 500)]
    shard_limit: u32,
    /// How long a shard iterator stays valid, in seconds.
    #[arg(long, env = "KCL_EMULATOR_ITERATOR_TTL_SECS", default_value_t = 300)]
    iterator_ttl_secs: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KCL_EMULATOR_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Enforce per-shard throughput limits (1 MiB/s and 1000 records/s in, 2 MiB/s and 5 reads/s out).
    #[arg(long, env = "KCL_EMULATOR_ENFORCE_THROUGHPUT")]
    enforce_throughput: bool,
    /// How long an enhanced fan-out subscription lasts, in seconds.
    #[arg(long, env = "KCL_EMULATOR_SUBSCRIPTION_SECS", default_value_t = 300)]
    subscription_secs: u64,
    /// Region used in ARNs.
    #[arg(long, env = "KCL_EMULATOR_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id used in ARNs.
    #[arg(long, env = "KCL_EMULATOR_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Most connections served at once.
    #[arg(long, env = "KCL_EMULATOR_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds an HTTP/1.1 client may take to send a request's headers.
    #[arg(
        long,
        env = "KCL_EMULATOR_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 30
    )]
    header_read_timeout_secs: u64,
    /// Seconds a connection may pass no bytes before it is closed.
    #[arg(long, env = "KCL_EMULATOR_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `kcl_emulator=debug`.
    #[arg(long, env = "KCL_EMULATOR_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 if an emulator answers its health endpoint on --host/--port, 1 otherwise.
    HealthCheck,
}

fn config(cli: &Cli) -> Config {
    let mut config = Config::default();
    config.host = cli.host.clone();
    config.port = cli.port;
    config.data_dir = cli.data_dir.clone();
    config.create_delay = Duration::from_millis(cli.create_delay_ms);
    config.update_delay = Duration::from_millis(cli.update_delay_ms);
    config.delete_delay = Duration::from_millis(cli.delete_delay_ms);
    config.shard_limit = cli.shard_limit;
    config.iterator_ttl = Duration::from_secs(cli.iterator_ttl_secs);
    config.max_request_bytes = cli.max_request_bytes;
    config.enforce_throughput = cli.enforce_throughput;
    config.subscription_lifetime = Duration::from_secs(cli.subscription_secs);
    config.region = cli.region.clone();
    config.account_id = cli.account_id.clone();
    config.max_connections = cli.max_connections;
    config.header_read_timeout = Duration::from_secs(cli.header_read_timeout_secs);
    config.idle_timeout = Duration::from_secs(cli.idle_timeout_secs);
    config
}

/// A minimal HTTP GET of `/health`, with no HTTP client dependency: the container image has no
/// shell or curl, so the binary probes itself.
async fn health_check(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
    let probe = async {
        let mut socket = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        socket
            .write_all(
                format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
        let mut response = Vec::new();
        socket.read_to_end(&mut response).await.ok()?;
        Some(response.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Some(true))
    )
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HealthCheck) = cli.command {
        return if health_check(&cli.host, cli.port).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|err| {
        eprintln!("invalid --log filter {:?}: {err}; using info", cli.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let emulator = match EmbeddedEmulator::start(config(&cli)).await {
        Ok(emulator) => emulator,
        Err(err) => {
            tracing::error!(error = %err, "failed to start");
            return ExitCode::FAILURE;
        }
    };
    // Scripts wait for this line (or poll /health) before sending requests.
    println!("kcl-emulator listening on {}", emulator.endpoint_url());
    let token = emulator.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    emulator.wait().await;
    ExitCode::SUCCESS
}
