//! A [testcontainers](https://docs.rs/testcontainers) module for the `kcl-emulator` container
//! image (feature `testcontainers`).
//!
//! [`KclEmulator`] is an [`Image`]: start it with [`AsyncRunner::start`], configure it with
//! [`ImageExt`] (`with_env_var` takes any `KCL_EMULATOR_*` variable, `with_mount` a volume for
//! `/data`), and get the endpoint and ready-made SDK clients from
//! [`KclEmulatorContainer`]. The image is not published: build it once with
//! `kcl-emulator/docker/build-image.sh`, which tags it `kcl-emulator:<crate version>`.
//!
//! Data is kept in the image's `/data` volume. Without a mount Docker creates an anonymous volume
//! that testcontainers removes with the container; mount a named volume at [`DATA_DIR`] to keep
//! streams and tables across containers.
//!
//! testcontainers 0.28 requests Docker API 1.53 without negotiating a lower version; an engine
//! that only speaks an older API rejects its requests with "client version 1.53 is too new".
//!
//! # Example
//!
//! A complete integration test (`testcontainers = "0.28"` and `tokio` in `[dev-dependencies]`,
//! `kcl-emulator` with `features = ["testcontainers"]`):
//!
//! ```no_run
//! use kcl_emulator::testcontainers::{KclEmulator, KclEmulatorContainer};
//! use testcontainers::runners::AsyncRunner;
//! use testcontainers::ImageExt;
//!
//! #[tokio::test]
//! async fn records_round_trip() -> Result<(), Box<dyn std::error::Error>> {
//!     let emulator = KclEmulator::default()
//!         .with_env_var("KCL_EMULATOR_CREATE_DELAY_MS", "0")
//!         .start()
//!         .await?;
//!     let kinesis = emulator.kinesis_client().await?;
//!     kinesis
//!         .create_stream()
//!         .stream_name("orders")
//!         .shard_count(1)
//!         .send()
//!         .await?;
//!     kinesis
//!         .put_record()
//!         .stream_name("orders")
//!         .partition_key("customer-1")
//!         .data(aws_sdk_kinesis::primitives::Blob::new("hello"))
//!         .send()
//!         .await?;
//!     let shards = kinesis.list_shards().stream_name("orders").send().await?;
//!     let iterator = kinesis
//!         .get_shard_iterator()
//!         .stream_name("orders")
//!         .shard_id(shards.shards()[0].shard_id())
//!         .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
//!         .send()
//!         .await?;
//!     let records = kinesis
//!         .get_records()
//!         .shard_iterator(iterator.shard_iterator().unwrap_or_default())
//!         .send()
//!         .await?;
//!     assert_eq!(records.records()[0].data().as_ref(), b"hello");
//!
//!     // The same endpoint serves DynamoDB, e.g. for a KCL lease table.
//!     let dynamodb = emulator.dynamodb_client().await?;
//!     assert!(dynamodb.list_tables().send().await?.table_names().is_empty());
//!     Ok(()) // dropping `emulator` removes the container and its anonymous volume
//! }
//! # fn main() {}
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;

use ::testcontainers::core::{ContainerPort, Mount, WaitFor};
#[cfg(doc)]
use ::testcontainers::{runners::AsyncRunner, ImageExt};
use ::testcontainers::{ContainerAsync, Image};

/// The image name `kcl-emulator/docker/build-image.sh` builds.
pub const NAME: &str = "kcl-emulator";
/// The image tag matching this crate: its version.
pub const TAG: &str = env!("CARGO_PKG_VERSION");
/// The port the emulator listens on inside the container (Kinesis and DynamoDB).
pub const PORT: ContainerPort = ContainerPort::Tcp(4567);
/// Where the image keeps durable data (a `VOLUME`).
pub const DATA_DIR: &str = "/data";
/// The line the emulator prints on stdout once it accepts requests.
pub const READY_MESSAGE: &str = "kcl-emulator listening on";

/// The `kcl-emulator` image: Kinesis Data Streams and DynamoDB on port 4567.
///
/// `Default` is the image `kcl-emulator:<crate version>` with its built-in settings. Other
/// settings go through [`ImageExt::with_env_var`] (`KCL_EMULATOR_*`, as listed by
/// `kcl-emulator --help`) or the helpers below; another tag through [`ImageExt::with_tag`].
#[derive(Debug, Clone, Default)]
pub struct KclEmulator {
    env_vars: BTreeMap<String, String>,
    data_mount: Option<Mount>,
}

impl KclEmulator {
    /// Keeps the data in RAM: mounts a tmpfs at [`DATA_DIR`], so no volume is created and
    /// nothing outlives the container. Do not also mount a volume at [`DATA_DIR`].
    pub fn in_memory(mut self) -> Self {
        self.data_mount = Some(Mount::tmpfs_mount(DATA_DIR));
        self
    }

    /// Makes streams, consumers and tables become ACTIVE (and go away) at once instead of after
    /// the default 50 ms.
    pub fn without_state_delays(self) -> Self {
        self.with_setting("KCL_EMULATOR_CREATE_DELAY_MS", "0")
            .with_setting("KCL_EMULATOR_UPDATE_DELAY_MS", "0")
            .with_setting("KCL_EMULATOR_DELETE_DELAY_MS", "0")
    }

    /// Sets the emulator's log filter (`KCL_EMULATOR_LOG`, tracing `EnvFilter` syntax).
    pub fn with_log_filter(self, filter: impl Into<String>) -> Self {
        self.with_setting("KCL_EMULATOR_LOG", filter)
    }

    fn with_setting(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env_vars.insert(name.to_owned(), value.into());
        self
    }
}

impl Image for KclEmulator {
    fn name(&self) -> &str {
        NAME
    }

    fn tag(&self) -> &str {
        TAG
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        // Printed after the stores are recovered and the listener is bound.
        vec![WaitFor::message_on_stdout(READY_MESSAGE)]
    }

    fn env_vars(
        &self,
    ) -> impl IntoIterator<Item = (impl Into<Cow<'_, str>>, impl Into<Cow<'_, str>>)> {
        &self.env_vars
    }

    fn mounts(&self) -> impl IntoIterator<Item = &Mount> {
        &self.data_mount
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        &[PORT]
    }
}

/// What a started [`KclEmulator`] container offers: its endpoint and SDK clients for it.
pub trait KclEmulatorContainer {
    /// The endpoint URL for AWS SDK clients, e.g. `http://127.0.0.1:32768`.
    fn endpoint_url(
        &self,
    ) -> impl Future<Output = ::testcontainers::core::error::Result<String>> + Send;

    /// A Kinesis client for the container: region `us-east-1`, static test credentials.
    fn kinesis_client(
        &self,
    ) -> impl Future<Output = ::testcontainers::core::error::Result<aws_sdk_kinesis::Client>> + Send
    {
        let endpoint = self.endpoint_url();
        async move { Ok(kinesis_client(&endpoint.await?)) }
    }

    /// A DynamoDB client for the container: region `us-east-1`, static test credentials.
    fn dynamodb_client(
        &self,
    ) -> impl Future<Output = ::testcontainers::core::error::Result<aws_sdk_dynamodb::Client>> + Send
    {
        let endpoint = self.endpoint_url();
        async move { Ok(dynamodb_client(&endpoint.await?)) }
    }
}

impl KclEmulatorContainer for ContainerAsync<KclEmulator> {
    async fn endpoint_url(&self) -> ::testcontainers::core::error::Result<String> {
        let port = self.get_host_port_ipv4(PORT).await?;
        let mut host = self.get_host().await?.to_string();
        if host == "localhost" {
            // Docker publishes on every IPv4 address; avoid `localhost` resolving to `::1`.
            host = "127.0.0.1".to_owned();
        }
        Ok(format!("http://{host}:{port}"))
    }
}

/// A Kinesis client for any emulator `endpoint`: region `us-east-1`, static test credentials.
pub fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-emulator"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A DynamoDB client for any emulator `endpoint`: region `us-east-1`, static test credentials.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kcl-emulator"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_defaults() {
        let image = KclEmulator::default();
        assert_eq!(image.name(), "kcl-emulator");
        assert_eq!(image.tag(), env!("CARGO_PKG_VERSION"));
        assert_eq!(image.expose_ports(), &[ContainerPort::Tcp(4567)]);
        assert_eq!(image.env_vars().into_iter().count(), 0);
        assert_eq!(image.mounts().into_iter().count(), 0);
        assert_eq!(image.ready_conditions().len(), 1);
    }

    #[test]
    fn settings_become_environment_variables() {
        let image = KclEmulator::default()
            .in_memory()
            .without_state_delays()
            .with_log_filter("debug");
        let vars: Vec<(String, String)> = image
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k.into().into_owned(), v.into().into_owned()))
            .collect();
        assert_eq!(image.mounts().into_iter().count(), 1);
        assert!(vars.contains(&("KCL_EMULATOR_CREATE_DELAY_MS".into(), "0".into())));
        assert!(vars.contains(&("KCL_EMULATOR_LOG".into(), "debug".into())));
    }
}
