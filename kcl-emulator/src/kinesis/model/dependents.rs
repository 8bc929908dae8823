//! Stream dependents: resources that live beside the streams and read from them (the
//! account's channels and queues, which `ext` defines), seen from the store.
//!
//! # Why the store holds them without knowing them
//! The store must keep them for two reasons. Lock order: a check that involves dependents and
//! a stream (the consumer limit they share, DeleteStream while a queue reads the stream, a
//! switch to PROVISIONED) must hold the dependents still across the stream's check and change,
//! so their lock has a place in the store's order (before any stream's). Durability: their
//! changes go to the same metadata journal as the streams', in the order they were made, and
//! the snapshot holds them with the streams.
//!
//! Neither needs their types. The store is generic over a [`StreamDependents`] that `ext`
//! implements: the store calls it on the events dependents care about (a check that counts
//! their readers, a journal record, a snapshot, recovery, the clock moving) and persists what
//! it hands over through associated types. A type parameter rather than a trait object keeps
//! every call static and lets `ext` reach its own registries with their real types, without
//! downcasting; the persisted JSON is whatever those types write, so the files stay as they
//! were when the store named channels and queues itself.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What the store calls on the account's stream dependents. See the module documentation.
pub(crate) trait StreamDependents: Default + Debug + Send + Sync + 'static {
    /// All dependents as the metadata snapshot holds them.
    type Saved: SavedDependents;

    /// Runs `f` with the number of live dependents reading the stream `stream_arn`, holding
    /// the dependents still meanwhile: a dependent created or deleted at the same moment is
    /// either counted or sees what `f` did. `f` may lock a stream, never the dependents.
    fn with_readers<T>(&self, stream_arn: &str, now: i64, f: impl FnOnce(usize) -> T) -> T;

    /// The journal record that brings the dependent `arn` up to date: its new state, or what
    /// changed since its previous record. `None` when there is nothing to record: its deletion
    /// has completed and it is gone (the previous record then stays the last word on it), or
    /// an earlier record already holds its changes. Called under the metadata lock, so the
    /// changes a record holds reach the journal in the order they were made.
    fn record(&self, arn: &str) -> Option<DependentRecord<Self>>;

    /// Every dependent whose deletion has not completed by `now`, for a snapshot (called under
    /// the metadata lock, just before it is written): records built after it hold only later
    /// changes.
    fn saved(&self, now: i64) -> Self::Saved;

    /// Takes over the dependents a recovered snapshot holds.
    fn recover(&self, saved: Self::Saved);

    /// The store's clock moved forward: time-driven changes (visibility timeouts) may have
    /// come due, and whoever waits for them should look again.
    fn clock_advanced(&self);
}

/// The dependents' part of the metadata: all of them in a snapshot (as fields of the snapshot
/// object), one at a time in journal records.
pub(crate) trait SavedDependents: Serialize + DeserializeOwned + Default + Debug {
    /// A change to one dependent, as a journal record holds it.
    type Record: Serialize + DeserializeOwned + Debug;

    /// Folds a journal record into the snapshot it continues.
    fn apply(&mut self, record: Self::Record);
}

/// The journal record type of the dependents `D`.
pub(crate) type DependentRecord<D> = <<D as StreamDependents>::Saved as SavedDependents>::Record;

/// No dependents: a store of streams alone, as the model's own tests use it.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct NoDependents;

/// The (empty) saved form of [`NoDependents`]: a struct, so it flattens into the snapshot.
#[cfg(test)]
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct NothingSaved {}

/// The journal record of [`NoDependents`], which never writes one.
#[cfg(test)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum NoRecord {}

#[cfg(test)]
impl SavedDependents for NothingSaved {
    type Record = NoRecord;
    fn apply(&mut self, record: NoRecord) {
        match record {}
    }
}

#[cfg(test)]
impl StreamDependents for NoDependents {
    type Saved = NothingSaved;
    fn with_readers<T>(&self, _stream_arn: &str, _now: i64, f: impl FnOnce(usize) -> T) -> T {
        f(0)
    }
    fn record(&self, _arn: &str) -> Option<NoRecord> {
        None
    }
    fn saved(&self, _now: i64) -> NothingSaved {
        NothingSaved {}
    }
    fn recover(&self, _saved: NothingSaved) {}
    fn clock_advanced(&self) {}
}
