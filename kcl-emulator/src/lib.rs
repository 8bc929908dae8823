//! # kcl-emulator
//!
//! A local server that speaks the Amazon Kinesis Data Streams API and the DynamoDB operations a
//! lease table needs, on one port, over HTTP/1.1 and h2c, in JSON 1.1 / JSON 1.0 and CBOR.
//!
//! # Layout
//! - `config`: settings shared by the binary, the embedded instance and the container image.
//! - `error`: wire errors (`__type`, HTTP status, message) in one table.
//! - `server`: the HTTP listener and the dispatch on `X-Amz-Target`.
//! - `protocol`: JSON and CBOR request/response codecs.
//! - `actions`: one module per Kinesis action: parse, validate, apply.
//! - `store`: streams, shards and the durable per-shard segment log.
//! - `dynamodb`: the DynamoDB tables, items and expression engine behind lease tables.
//! - `embedded`: start an instance in-process on 127.0.0.1:0 and stop it on drop.
//! - `testcontainers` (feature `testcontainers`): the container image as a testcontainers
//!   `Image`, with ready-made SDK clients.
#![warn(missing_docs)]

mod actions;
mod config;
mod dynamodb;
mod embedded;
mod error;
mod protocol;
mod server;
mod store;
#[cfg(feature = "testcontainers")]
pub mod testcontainers;

#[doc(hidden)]
pub mod bench_support;
#[doc(hidden)]
pub mod fuzz_entry;

pub use config::Config;
pub use embedded::EmbeddedEmulator;
pub use error::{ApiError, ApiResult, ErrorKind};
