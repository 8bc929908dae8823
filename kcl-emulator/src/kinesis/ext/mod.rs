//! Channels and queues: account-level resources that read from a stream. Each has its
//! actions (`mod.rs`) and its state (`model.rs`); the stream store keeps them beside the
//! streams and persists them with the stream metadata.

pub(crate) mod channels;
pub(crate) mod queues;
