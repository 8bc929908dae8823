//! What the emulator keeps on disk, below any service's model: the frame codec every durable
//! file is written in, the group committer every durable file is appended through, the log
//! file written in place that journals use (a sync then commits no change of size), the
//! per-shard segment log (Kinesis records) and the write-ahead log DynamoDB tables use.
//! The Kinesis metadata journal, which knows the stream model's shapes, lives with that model.
//! Files are reached through one storage seam: the real file system, or in tests a model of
//! one whose crashes lose what a power loss could.

pub(crate) mod commit;
pub(crate) mod frame;
pub(crate) mod journal;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod segment;
pub(crate) mod storage;
pub(crate) mod wal;
