//! Changing metadata: the one way a request changes a stream's settings or a stream dependent.
//!
//! Each method takes the locks the change needs in the store's lock order (dependents before
//! any stream), runs the caller's check-and-change under them, releases them and makes the
//! result durable before returning. When that save fails the change is undone, so nothing is
//! answered as done that was not kept, and the error is returned. Callers never persist by
//! themselves. The one kind of change answered before it is durable is one whose loss in a
//! crash is harmless ([`KinesisStore::keep_dependent_unsynced`]: a queue receive, whose loss
//! only makes records visible again).

use super::*;

impl<D: StreamDependents> KinesisStore<D> {
    /// Runs `change` on `stream`'s state under its lock, then saves the stream.
    ///
    /// # Errors
    /// What `change` returns (nothing is saved then), or an internal error when the save
    /// failed (the settings are then as they were before `change`).
    pub(crate) fn change_stream<T, E: From<StoreError>>(
        &self,
        stream: &Stream,
        change: impl FnOnce(&mut StreamState) -> Result<T, E>,
    ) -> Result<T, E> {
        let (result, before) = {
            let mut state = stream.lock();
            let before = self.is_durable().then(|| state.settings.clone());
            (change(&mut state)?, before)
        };
        self.save_stream_or_restore(stream, before)?;
        Ok(result)
    }

    /// As [`Self::change_stream`], for a check that counts the live dependents reading the
    /// stream (queues share its consumer limit and need its capacity mode). The dependents are
    /// held still across `change`, so one created meanwhile is either counted or sees the
    /// change.
    ///
    /// # Errors
    /// As [`Self::change_stream`].
    pub(crate) fn change_stream_counting_readers<T, E: From<StoreError>>(
        &self,
        stream: &Stream,
        change: impl FnOnce(&mut StreamState, usize) -> Result<T, E>,
    ) -> Result<T, E> {
        let (result, before) =
            self.dependents
                .with_readers(&stream.arn, self.now_ms(), |reading| {
                    let mut state = stream.lock();
                    let before = self.is_durable().then(|| state.settings.clone());
                    change(&mut state, reading).map(|result| (result, before))
                })?;
        self.save_stream_or_restore(stream, before)?;
        Ok(result)
    }

    fn save_stream_or_restore(
        &self,
        stream: &Stream,
        before: Option<StreamSettings>,
    ) -> StoreResult<()> {
        let Err(err) = self.save_change(MetaChange::Stream(stream)) else {
            return Ok(());
        };
        if let Some(before) = before {
            stream.lock().settings = before;
        }
        Err(err)
    }

    /// Makes the change just made to the dependent `arn` durable, blocking the thread until
    /// it is. When that fails, runs `undo` (with no lock of the store held), so nothing is
    /// answered as done that was not kept, and returns the error.
    ///
    /// # Errors
    /// An internal error when the save failed.
    pub(crate) fn keep_dependent_or_undo(&self, arn: &str, undo: impl FnOnce()) -> StoreResult<()> {
        undo_on_error(self.save_change(MetaChange::Dependent(arn)), undo)
    }

    /// As [`Self::keep_dependent_or_undo`], waiting for the sync without blocking the thread
    /// (other changes share it): for changes made often, such as queue acknowledgements.
    ///
    /// # Errors
    /// An internal error when the save failed.
    pub(crate) async fn keep_dependent_or_undo_async(
        &self,
        arn: &str,
        undo: impl FnOnce(),
    ) -> StoreResult<()> {
        let saved = match self.queue_change(MetaChange::Dependent(arn)) {
            Ok(write) => write.durable().await,
            Err(err) => Err(err),
        };
        undo_on_error(saved, undo)
    }

    /// Queues the record of the change just made to the dependent `arn` without waiting for it
    /// to be durable: for changes whose loss in a crash is harmless. It still reaches the
    /// journal before any later change, so a change that is waited for covers it.
    ///
    /// # Errors
    /// An internal error when the record could not be queued; `undo` has run then.
    pub(crate) fn keep_dependent_unsynced(
        &self,
        arn: &str,
        undo: impl FnOnce(),
    ) -> StoreResult<()> {
        undo_on_error(self.queue_change_unsynced(MetaChange::Dependent(arn)), undo)
    }
}

/// `saved`, after running `undo` when it is an error.
fn undo_on_error(saved: StoreResult<()>, undo: impl FnOnce()) -> StoreResult<()> {
    if saved.is_err() {
        undo();
    }
    saved
}
