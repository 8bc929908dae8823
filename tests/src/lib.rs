//! Shared helpers for the integration tests: an emulator per test on 127.0.0.1:0, SDK clients
//! pointed at it, unique names, and a Python environment for the compatibility tests.
#![warn(missing_docs)]

pub mod container;
pub mod kcl;
pub mod multilang;
pub mod prometheus;
pub mod python;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kcl_emulator::{Config, EmbeddedEmulator};

/// How long any single wait in a test may take before the test fails.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts an in-memory emulator on a free local port.
pub async fn start_emulator() -> EmbeddedEmulator {
    start_emulator_with(Config::embedded()).await
}

/// Starts an emulator with `config` (port 0 and 127.0.0.1 are the caller's to keep).
pub async fn start_emulator_with(config: Config) -> EmbeddedEmulator {
    EmbeddedEmulator::start(config)
        .await
        .expect("emulator starts")
}

/// SDK clients for an emulator endpoint (region `us-east-1`, static test credentials): the
/// helpers the emulator's testcontainers module gives its users, so the tests use them too.
pub use kcl_emulator::testcontainers::{dynamodb_client, kinesis_client};

/// A name no other test in this process uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after [`TEST_TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a provisioned stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_active_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    wait_for_active(client, name).await;
}

/// Waits until stream `name` is ACTIVE.
pub async fn wait_for_active(client: &aws_sdk_kinesis::Client, name: &str) {
    use aws_sdk_kinesis::types::StreamStatus;
    eventually("stream to become ACTIVE", || async {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .ok()?;
        (summary.stream_description_summary()?.stream_status() == &StreamStatus::Active)
            .then_some(())
    })
    .await;
}

/// The workspace root directory.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}
