//! # kcl-checkpoint
//!
//! How far each shard has been processed: extended sequence numbers (56-digit safe, with the
//! sentinels) and the per-shard [`Checkpointer`], fenced by the lease.
//!
//! # Layout
//! - `sentinel`: [`ExtendedSequenceNumber`] and [`SequenceNumber`].
//! - `checkpointer`: [`Checkpointer`], [`PreparedCheckpoint`], [`CheckpointWriter`].
//! - `error`: [`CheckpointError`].
#![warn(missing_docs)]

mod checkpointer;
mod error;
mod sentinel;

pub use checkpointer::{CheckpointWriter, Checkpointer, PreparedCheckpoint};
pub use error::CheckpointError;
pub use sentinel::{ExtendedSequenceNumber, InvalidSequenceNumber, SequenceNumber};
