//! SplitShard, MergeShards and UpdateShardCount.
//!
//! Every reshard closes parent shards and opens children whose hash ranges exactly cover the
//! parents'. UpdateShardCount is carried out as a sequence of real splits and merges (as AWS
//! does, which is why it too leaves intermediate closed shards), so every child it creates has at
//! most two parents and a lineage the KCL can follow.

use std::sync::Arc;

use super::{
    KinesisStore, MetaChange, Shard, StoreError, StoreResult, Stream, StreamDependents, StreamState,
};

impl<D: StreamDependents> KinesisStore<D> {
    /// Splits `shard_id` at `new_starting_hash` into two children.
    pub(crate) fn split_shard(
        &self,
        stream: &Stream,
        shard_id: &str,
        new_starting_hash: u128,
    ) -> StoreResult<()> {
        // Counted before taking the stream's lock: counting locks every stream.
        self.check_shard_limit(1)?;
        {
            let mut state = stream.lock();
            self.require_active(stream, &state)?;
            let parent = self.open_shard(stream, &state, shard_id)?;
            if new_starting_hash <= parent.start_hash || new_starting_hash > parent.end_hash {
                return Err(StoreError::SplitOutsideShard {
                    stream: self.stream_name(&stream.name),
                    shard: parent.id.clone(),
                    at: new_starting_hash,
                    start: parent.start_hash,
                    end: parent.end_hash,
                });
            }
            self.split_locked(stream, &mut state, &parent, new_starting_hash)?;
            self.start_update(&mut state);
        }
        self.save_change(MetaChange::Stream(stream))
    }

    /// Merges two adjacent open shards into one child.
    pub(crate) fn merge_shards(
        &self,
        stream: &Stream,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> StoreResult<()> {
        {
            let mut state = stream.lock();
            self.require_active(stream, &state)?;
            let first = self.open_shard(stream, &state, shard_id)?;
            let second = self.open_shard(stream, &state, adjacent_shard_id)?;
            let adjacent = first.end_hash.checked_add(1) == Some(second.start_hash)
                || second.end_hash.checked_add(1) == Some(first.start_hash);
            if !adjacent || first.index == second.index {
                return Err(StoreError::NotAdjacent {
                    stream: self.stream_name(&stream.name),
                    first: first.id.clone(),
                    second: second.id.clone(),
                });
            }
            self.merge_locked(stream, &mut state, &first, &second)?;
            self.start_update(&mut state);
        }
        self.save_change(MetaChange::Stream(stream))
    }

    /// Reshapes the stream to `target` open shards of (nearly) equal hash ranges.
    pub(crate) fn update_shard_count(&self, stream: &Stream, target: u32) -> StoreResult<u32> {
        let current = stream.lock().open.len() as u32;
        // Counted before taking the stream's lock: counting locks every stream.
        if target > current {
            self.check_shard_limit((target - current) as usize)?;
        }
        {
            let mut state = stream.lock();
            self.require_active(stream, &state)?;
            let ranges = super::keys::even_hash_ranges(target);
            // Split every open shard at each target boundary that falls strictly inside it.
            for &(boundary, _) in ranges.iter().skip(1) {
                let inside = state
                    .open
                    .iter()
                    .find(|s| s.start_hash < boundary && boundary <= s.end_hash)
                    .map(Arc::clone);
                if let Some(shard) = inside {
                    self.split_locked(stream, &mut state, &shard, boundary)?;
                }
            }
            // Then merge, left to right, the pieces that make up each target range.
            for &(start, end) in &ranges {
                loop {
                    let pieces: Vec<Arc<Shard>> = state
                        .open
                        .iter()
                        .filter(|s| s.start_hash >= start && s.end_hash <= end)
                        .map(Arc::clone)
                        .collect();
                    if pieces.len() < 2 {
                        break;
                    }
                    self.merge_locked(stream, &mut state, &pieces[0], &pieces[1])?;
                }
            }
            self.start_update(&mut state);
        }
        self.save_change(MetaChange::Stream(stream))?;
        Ok(current)
    }

    fn open_shard(
        &self,
        stream: &Stream,
        state: &StreamState,
        shard_id: &str,
    ) -> StoreResult<Arc<Shard>> {
        let shard = state
            .shard(shard_id, self.now_ms())
            .ok_or_else(|| self.shard_not_found(&stream.name, shard_id))?;
        if !shard.is_open() {
            return Err(StoreError::ShardClosed {
                stream: self.stream_name(&stream.name),
                shard: shard.id.clone(),
            });
        }
        Ok(Arc::clone(shard))
    }

    /// Fails unless the account may open `additional` more shards.
    pub(super) fn check_shard_limit(&self, additional: usize) -> StoreResult<()> {
        let open = self.open_shard_count();
        if open + additional > self.config.shard_limit as usize {
            return Err(StoreError::ShardLimit {
                account: self.config.account_id.clone(),
                region: self.config.region.clone(),
                open,
                limit: self.config.shard_limit,
                additional,
            });
        }
        Ok(())
    }

    fn split_locked(
        &self,
        stream: &Stream,
        state: &mut StreamState,
        parent: &Arc<Shard>,
        at: u128,
    ) -> StoreResult<()> {
        self.close_shard(parent);
        let parent_id = Some(parent.id.clone());
        self.add_shard(
            stream,
            state,
            parent.start_hash,
            at - 1,
            parent_id.clone(),
            None,
        )?;
        self.add_shard(stream, state, at, parent.end_hash, parent_id, None)?;
        state.rebuild_open();
        Ok(())
    }

    fn merge_locked(
        &self,
        stream: &Stream,
        state: &mut StreamState,
        first: &Arc<Shard>,
        second: &Arc<Shard>,
    ) -> StoreResult<()> {
        self.close_shard(first);
        self.close_shard(second);
        let start = first.start_hash.min(second.start_hash);
        let end = first.end_hash.max(second.end_hash);
        self.add_shard(
            stream,
            state,
            start,
            end,
            Some(first.id.clone()),
            Some(second.id.clone()),
        )?;
        state.rebuild_open();
        Ok(())
    }
}
