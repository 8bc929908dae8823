//! The Kinesis Data Streams service.
//!
//! - `api`: the actions, one module per family, and the dispatch on the operation name.
//! - `model`: streams, shards and consumers, their records and their durable metadata.
//! - `ext`: channels and queues, the account-level resources that read from streams.

pub(crate) mod api;
pub(crate) mod ext;
pub(crate) mod model;
