//! Running the emulator inside another program: tests, examples, benchmarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http::{self, Services};
use crate::Config;

/// An emulator serving on a local port from the current tokio runtime.
///
/// Dropping it stops accepting connections at once; [`EmbeddedEmulator::shutdown`] also waits
/// for open connections to finish and for durable data to be flushed.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let emulator = kcl_emulator::EmbeddedEmulator::start(kcl_emulator::Config::embedded()).await?;
/// println!("Kinesis and DynamoDB at {}", emulator.endpoint_url());
/// emulator.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EmbeddedEmulator {
    addr: SocketAddr,
    services: Arc<Services>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EmbeddedEmulator {
    /// Opens the stores (recovering durable data) and starts serving on `config.host:config.port`.
    ///
    /// # Errors
    /// When the address cannot be bound or the data directory cannot be read.
    pub async fn start(config: Config) -> std::io::Result<EmbeddedEmulator> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        let addr = listener.local_addr()?;
        let open_config = config.clone();
        let services = tokio::task::spawn_blocking(move || Services::open(&open_config))
            .await
            .map_err(std::io::Error::other)??;
        let services = Arc::new(services);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(http::serve(
            listener,
            Arc::clone(&services),
            shutdown.clone(),
        ));
        tracing::info!(%addr, data_dir = ?config.data_dir, "emulator listening");
        Ok(EmbeddedEmulator {
            addr,
            services,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give AWS SDK clients, e.g. `http://127.0.0.1:45123`.
    pub fn endpoint_url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{host}:{}", self.addr.port())
    }

    /// Moves this emulator's Kinesis clock forward by `by`, as if that much time had passed;
    /// for testing retention. Records older than a stream's retention period are trimmed, and
    /// closed shards whose retention has run out expire (ListShards no longer lists them,
    /// GetShardIterator on them answers `ResourceNotFoundException`), before this returns.
    ///
    /// Only this emulator's clock moves; other emulators in the process and DynamoDB keep real
    /// time. The clock never runs back: with a data directory, a restarted emulator resumes from
    /// the advanced time.
    pub fn advance_clock(&self, by: Duration) {
        self.services.kinesis.advance_clock(by);
    }

    /// Stops serving and waits until open connections have finished.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Resolves when the server stops (after [`EmbeddedEmulator::shutdown`] from elsewhere or
    /// a fatal error).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// A token that stops the emulator when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Drop for EmbeddedEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
