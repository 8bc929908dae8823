//! The MultiLangDaemon without a JVM: record processors in Python (amazon_kclpy), Node, Ruby
//! or any language, one child process per shard, speaking the Java daemon's JSON-lines protocol.
//!
//! - `properties`: the Java KCL properties file and the daemon's keys.
//! - `protocol`: the messages in both directions.
//! - `child`: one child process: actions out, statuses and checkpoint requests in.
//! - `processor`: a record processor that drives a child per shard.
//! - `daemon`: the worker the `kcl-multilang` binary runs, built from a properties file.

pub mod child;
pub mod daemon;
pub mod processor;
pub mod properties;
pub mod protocol;

pub use child::{
    forward_remaining_stderr, CheckpointRequests, ChildError, ChildProcess, NoCheckpoints,
};
pub use daemon::scheduler_builder;
pub use processor::{MultiLangFactory, MultiLangProcessor};
pub use properties::{MultiLangConfig, PropertiesError};
pub use protocol::{ChildMessage, DaemonMessage, RecordMessage};
