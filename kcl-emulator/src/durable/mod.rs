//! What the emulator keeps on disk, below any service's model: the framed per-shard segment
//! log with its group committer (Kinesis records) and the write-ahead log DynamoDB tables use.
//! The Kinesis metadata journal, which knows the stream model's shapes, lives with that model.

pub(crate) mod segment;
pub(crate) mod wal;
