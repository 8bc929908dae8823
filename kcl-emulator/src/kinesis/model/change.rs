//! Changing metadata: the one way a request changes a stream's settings, a queue or a channel.
//!
//! Each method takes the locks the change needs in the store's lock order (queues before any
//! stream), runs the caller's check-and-change under them, releases them and makes the result
//! durable before returning. When that save fails the change is undone, so nothing is answered
//! as done that was not kept, and the error is returned. Callers never persist by themselves.
//! The one change answered before it is durable is a queue receive
//! ([`KinesisStore::keep_delivery_unsynced`]), whose loss only redelivers records.

use std::sync::MutexGuard;

use super::*;
use crate::kinesis::ext::queues::model::Delivery;

/// A resource the account holds beside its streams, in a registry the store owns.
pub(crate) trait Registered: Clone {
    /// The resource's ARN, which names it in the metadata journal.
    fn arn(&self) -> &str;
    /// The registry of this kind of resource, locked.
    fn registry(store: &KinesisStore) -> MutexGuard<'_, Vec<Self>>;
    /// The journal record for the resource `arn`.
    fn meta_change(arn: &str) -> MetaChange<'_>;
}

impl Registered for QueueMeta {
    fn arn(&self) -> &str {
        &self.arn
    }
    fn registry(store: &KinesisStore) -> MutexGuard<'_, Vec<Self>> {
        store.queues()
    }
    fn meta_change(arn: &str) -> MetaChange<'_> {
        MetaChange::Queue(arn)
    }
}

impl Registered for ChannelMeta {
    fn arn(&self) -> &str {
        &self.arn
    }
    fn registry(store: &KinesisStore) -> MutexGuard<'_, Vec<Self>> {
        store.channels()
    }
    fn meta_change(arn: &str) -> MetaChange<'_> {
        MetaChange::Channel(arn)
    }
}

impl KinesisStore {
    /// Runs `change` on `stream`'s state under its lock, then saves the stream.
    ///
    /// # Errors
    /// What `change` returns (nothing is saved then), or an internal error when the save
    /// failed (the settings are then as they were before `change`).
    pub(crate) fn change_stream<T>(
        &self,
        stream: &Stream,
        change: impl FnOnce(&mut StreamState) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let (result, before) = {
            let mut state = stream.lock();
            let before = self.is_durable().then(|| state.settings.clone());
            (change(&mut state)?, before)
        };
        self.save_stream_or_restore(stream, before)?;
        Ok(result)
    }

    /// As [`Self::change_stream`], for a check that counts the live queues reading the stream
    /// (they share its consumer limit and need its capacity mode). The queues' lock is held
    /// across `change`, so a queue created meanwhile is either counted or sees the change.
    ///
    /// # Errors
    /// As [`Self::change_stream`].
    pub(crate) fn change_stream_counting_queues<T>(
        &self,
        stream: &Stream,
        change: impl FnOnce(&mut StreamState, usize) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let (result, before) = {
            let queues = self.queues();
            let reading = queues_reading(&queues, &stream.arn, self.now_ms());
            let mut state = stream.lock();
            let before = self.is_durable().then(|| state.settings.clone());
            (change(&mut state, reading)?, before)
        };
        self.save_stream_or_restore(stream, before)?;
        Ok(result)
    }

    fn save_stream_or_restore(
        &self,
        stream: &Stream,
        before: Option<StreamSettings>,
    ) -> ApiResult<()> {
        let Err(err) = self.save_change(MetaChange::Stream(stream)) else {
            return Ok(());
        };
        if let Some(before) = before {
            stream.lock().settings = before;
        }
        Err(err)
    }

    /// Runs `change` on the registry of `R` (queues or channels) under its lock, then saves
    /// the resource whose ARN `change` returns beside its result. `change` gets the store's
    /// time, and may lock a stream (registries come before streams in the lock order).
    ///
    /// # Errors
    /// What `change` returns (nothing is saved then), or an internal error when the save
    /// failed (the resource is then as it was before, or gone again if `change` added it).
    pub(crate) fn change_registered<R: Registered, T>(
        &self,
        change: impl FnOnce(&mut Vec<R>, i64) -> ApiResult<(T, String)>,
    ) -> ApiResult<T> {
        let (result, arn, before) = {
            let mut registry = R::registry(self);
            let before = self.is_durable().then(|| registry.clone());
            let (result, arn) = change(&mut registry, self.now_ms())?;
            let before = before.map(|all| all.into_iter().find(|r| r.arn() == arn));
            (result, arn, before)
        };
        let Err(err) = self.save_change(R::meta_change(&arn)) else {
            return Ok(result);
        };
        if let Some(before) = before {
            let mut registry = R::registry(self);
            let at = registry.iter().position(|r| r.arn() == arn);
            match (at, before) {
                (Some(at), Some(before)) => registry[at] = before,
                (Some(at), None) => {
                    registry.remove(at);
                }
                (None, _) => {}
            }
        }
        Err(err)
    }

    /// Saves a change to the delivery state of the queue `arn` and waits until it is durable;
    /// when the save fails, puts back the state from `before`, so no record is answered as
    /// settled that was not kept.
    ///
    /// # Errors
    /// An internal error when the save failed.
    pub(crate) async fn keep_delivery_or_undo(
        &self,
        arn: &str,
        before: Option<Delivery>,
    ) -> ApiResult<()> {
        let saved = match self.queue_change(MetaChange::Queue(arn)) {
            Ok(write) => write.durable().await,
            Err(err) => Err(err),
        };
        let Err(err) = saved else {
            return Ok(());
        };
        self.undo_delivery(arn, before);
        Err(err)
    }

    /// Saves a change to the delivery state of the queue `arn` without waiting for it to be
    /// durable: for changes whose loss in a crash only makes records visible again sooner. It
    /// still reaches the journal before any later change, so a change that is waited for
    /// covers it.
    ///
    /// # Errors
    /// An internal error when the change could not be queued; `before` is then put back.
    pub(crate) fn keep_delivery_unsynced(
        &self,
        arn: &str,
        before: Option<Delivery>,
    ) -> ApiResult<()> {
        let Err(err) = self.queue_change(MetaChange::Queue(arn)) else {
            return Ok(());
        };
        self.undo_delivery(arn, before);
        Err(err)
    }

    fn undo_delivery(&self, arn: &str, before: Option<Delivery>) {
        if let Some(before) = before {
            if let Some(queue) = self.queues().iter_mut().find(|q| q.arn == arn) {
                queue.delivery = before;
            }
        }
    }
}
