//! The Kinesis Data Streams service.
//!
//! Its modules depend only downwards in this list (checked by the `layering` test):
//! - `api`: the stream actions, one module per family, and the dispatch on the operation name.
//! - `ext`: channels and queues, the account-level resources that read from streams: their
//!   actions, and their state as the store's stream dependents.
//! - `request`: what both kinds of action share: stream references, paging tokens, shared
//!   limits, the checks of request members, and how store errors and the model's enums read
//!   on the wire.
//! - `model`: streams, shards and consumers, their records and their durable metadata; it
//!   keeps the stream dependents without knowing their types, and its errors say what went
//!   wrong, not how a client sees it.

pub(crate) mod api;
pub(crate) mod ext;
pub(crate) mod model;
pub(crate) mod request;

/// The store the service runs on: the streams, with the account's channels and queues as
/// their dependents.
pub(crate) type KinesisStore = model::KinesisStore<ext::AccountResources>;
