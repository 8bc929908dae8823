//! # kcl-emulator
//!
//! A local server that speaks the Amazon Kinesis Data Streams API and the DynamoDB operations a
//! lease table needs, on one port, over HTTP/1.1 and h2c, in JSON 1.1 / JSON 1.0 and CBOR.
//!
//! # Layout
//! Top-level modules depend only downwards in this list (checked by the `layering` test):
//! - `http`: the listener, connection limits and timeouts, and the dispatch on `X-Amz-Target`
//!   to a service; it turns a service's reply into a whole or a streamed response.
//! - `kinesis`: the Kinesis Data Streams service. Its modules, too, depend only downwards in
//!   this list (checked by the same test):
//!   - `api`: the stream actions, one module per family; each decodes its input, validates it,
//!     calls the model and answers a `Reply` (a whole body, or event-stream frames).
//!   - `ext`: channels and queues, account-level resources that read from streams: their
//!     actions, and their registries, which the store keeps as its stream dependents.
//!   - `request`: what `api` and `ext` share: stream references, paging tokens, shared limits,
//!     the checks of request members, the API's spellings of the model's enums, and the one
//!     mapping of store errors to wire errors.
//!   - `model`: streams, shards, consumers and their records; the store and its lock order,
//!     appends and retention, and the durable metadata journal. It keeps the stream
//!     dependents through a hook (`StreamDependents`) without knowing their types, and
//!     reports failures as a typed `StoreError`, never in wire terms.
//! - `dynamodb`: the DynamoDB tables, items and expression engine behind lease tables.
//! - `durable`: the on-disk formats below the services: the one frame codec, the group
//!   committer every durable file is appended through, the log file written in place that
//!   the metadata journal and the write-ahead log use (`journal`), the per-shard segment log,
//!   and the DynamoDB write-ahead log; and the storage seam (`storage`) every durable file is
//!   reached through, with, in tests, a backend in memory (`memory`) whose crashes lose what
//!   a power loss could and which fails chosen operations.
//! - `wire`: what crosses the wire: JSON and CBOR codecs, event-stream framing, the error
//!   table and the one place "1 validation error detected" is written.
//! - `clock`: wall time, and the Kinesis clock tests can move forward.
//! - `config`: settings shared by the binary, the embedded instance and the container image.
//! - `embedded`: start an instance in-process on 127.0.0.1:0 and stop it on drop.
//! - `testcontainers` (feature `testcontainers`): the container image as a testcontainers
//!   `Image`, with ready-made SDK clients.
//! - `bench_support` (feature `bench-internals`, which only this crate's benchmarks enable) and
//!   `fuzz_entry` (hidden): entry points for the benchmarks and the fuzz targets.
#![warn(missing_docs)]

mod clock;
mod config;
mod durable;
mod dynamodb;
mod embedded;
mod http;
mod kinesis;
#[cfg(feature = "testcontainers")]
pub mod testcontainers;
mod wire;

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_support;
#[doc(hidden)]
pub mod fuzz_entry;

pub use config::Config;
pub use embedded::EmbeddedEmulator;
pub use wire::{ApiError, ApiResult, ErrorKind};
