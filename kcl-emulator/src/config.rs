//! Emulator settings shared by the binary, the embedded instance and the container image.

use std::path::PathBuf;
use std::time::Duration;

/// How the emulator behaves. `Default` gives fast, in-memory settings suited to tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to bind. Default `127.0.0.1`.
    pub host: String,
    /// Port to bind; `0` picks a free port. Default `4567`.
    pub port: u16,
    /// Directory for durable data; `None` keeps everything in memory. Default `None`.
    pub data_dir: Option<PathBuf>,
    /// How long a stream, consumer or table stays CREATING. Default 50 ms.
    pub create_delay: Duration,
    /// How long a stream stays UPDATING after a reshard or mode change. Default 50 ms.
    pub update_delay: Duration,
    /// How long a stream or table stays DELETING. Default 50 ms.
    pub delete_delay: Duration,
    /// Maximum open shards across all streams (the account shard limit). Default 500.
    pub shard_limit: u32,
    /// How long a shard iterator stays valid. Default 5 minutes, as in AWS.
    pub iterator_ttl: Duration,
    /// Largest request body accepted, in bytes. Default 16 MiB (room for a 5 MiB
    /// PutRecords once base64 and JSON overhead are added).
    pub max_request_bytes: usize,
    /// Enforce per-shard throughput limits (1 MiB/s and 1000 records/s in, 2 MiB/s and
    /// 5 calls/s out). Default off.
    pub enforce_throughput: bool,
    /// How long an enhanced fan-out subscription lasts before the client must resubscribe.
    /// Default 5 minutes, as in AWS.
    pub subscription_lifetime: Duration,
    /// Region used in ARNs. Default `us-east-1`.
    pub region: String,
    /// Account id used in ARNs. Default `000000000000`.
    pub account_id: String,
    /// Most connections served at once; further ones wait in the listen backlog until one
    /// closes. Default 4,096.
    pub max_connections: usize,
    /// How long an HTTP/1.1 client may take to send a request's headers before the connection
    /// is closed. Default 30 s: headers are a few hundred bytes, so a client still sending
    /// them after 30 s is stuck or trickling on purpose (a slowloris), and without this limit
    /// such clients hold connection slots forever. AWS SDKs give up on a call well before
    /// that (the Java SDK's default socket timeout is 50 s for the whole response).
    pub header_read_timeout: Duration,
    /// How long a connection may pass no bytes either way before it is closed: idle
    /// keep-alive connections, and clients that stall mid-request or before sending
    /// anything. Default 60 s, the idle timeout AWS's load balancers use by default, so
    /// SDK connection pools meet the same behaviour as against AWS (they reconnect and retry
    /// when a pooled connection turns out closed). An open SubscribeToShard stream is never
    /// idle: it carries an event at least every second.
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 4567,
            data_dir: None,
            create_delay: Duration::from_millis(50),
            update_delay: Duration::from_millis(50),
            delete_delay: Duration::from_millis(50),
            shard_limit: 500,
            iterator_ttl: Duration::from_secs(300),
            max_request_bytes: 16 * 1024 * 1024,
            enforce_throughput: false,
            subscription_lifetime: Duration::from_secs(300),
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Settings for an in-process instance: a free port on 127.0.0.1, in memory.
    pub fn embedded() -> Self {
        Config {
            port: 0,
            ..Config::default()
        }
    }
}
