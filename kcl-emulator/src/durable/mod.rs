//! What the emulator keeps on disk, below any service's model: the frame codec every durable
//! file is written in, the framed per-shard segment log with its group committer (Kinesis
//! records) and the write-ahead log DynamoDB tables use.
//! The Kinesis metadata journal, which knows the stream model's shapes, lives with that model.

pub(crate) mod frame;
pub(crate) mod segment;
pub(crate) mod wal;
