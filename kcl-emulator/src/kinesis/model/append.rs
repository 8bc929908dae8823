//! Appending records (assigning sequence numbers, group commit, visibility) and retention.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::*;

impl<D: StreamDependents> KinesisStore<D> {
    /// Appends `records` to `stream`, in order per shard. Resolves when each record is
    /// durable (immediately in memory). The outcomes are in the order of `records`.
    pub(crate) async fn append(
        &self,
        stream: &Stream,
        records: Vec<NewRecord>,
    ) -> StoreResult<Vec<PutOutcome>> {
        let now = self.now_ms();
        let mut outcomes: Vec<Option<PutOutcome>> = vec![None; records.len()];
        let mut waits: Vec<oneshot::Receiver<std::io::Result<()>>> = Vec::new();
        let mut pending: Vec<(usize, NewRecord)> = records.into_iter().enumerate().collect();
        // A record routed to a shard that a concurrent reshard closes is routed again.
        for _attempt in 0..8 {
            if pending.is_empty() {
                break;
            }
            let open = Arc::clone(&stream.lock().open);
            let mut by_shard: Vec<(usize, Vec<(usize, NewRecord)>)> = Vec::new();
            for (at, record) in pending.drain(..) {
                let shard_at = open.partition_point(|s| s.end_hash < record.hash);
                match by_shard.iter_mut().find(|(s, _)| *s == shard_at) {
                    Some((_, group)) => group.push((at, record)),
                    None => by_shard.push((shard_at, vec![(at, record)])),
                }
            }
            for (shard_at, group) in by_shard {
                let Some(shard) = open.get(shard_at) else {
                    return Err(StoreError::Internal("no open shard covers the hash key"));
                };
                let mut retry =
                    self.append_to_shard(stream, shard, group, now, &mut outcomes, &mut waits);
                pending.append(&mut retry);
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::Internal(
                "the stream kept resharding while appending",
            ));
        }
        for wait in waits {
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(StoreError::Internal("the commit thread stopped")),
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every record has an outcome"))
            .collect())
    }

    /// Appends a group of records to one shard under its lock. Returns the records that must be
    /// routed again because the shard closed.
    pub(super) fn append_to_shard(
        &self,
        stream: &Stream,
        shard: &Arc<Shard>,
        group: Vec<(usize, NewRecord)>,
        now: i64,
        outcomes: &mut [Option<PutOutcome>],
        waits: &mut Vec<oneshot::Receiver<std::io::Result<()>>>,
    ) -> Vec<(usize, NewRecord)> {
        let mut log = shard.lock();
        if log.ending_counter.is_some() {
            return group;
        }
        if let Some(reason) = &log.write_failed {
            for (at, _) in group {
                outcomes[at] = Some(PutOutcome::Rejected(Rejection::ShardUnwritable {
                    shard: shard.id.clone(),
                    reason: reason.clone(),
                }));
            }
            return Vec::new();
        }
        let enforce = self.config.enforce_throughput;
        if enforce {
            log.window.roll(now);
        }
        let mut frames = Vec::new();
        let mut first_counter = None;
        let mut last_counter = 0;
        for (at, record) in group {
            if enforce {
                let bytes = (record.data.len() + record.partition_key.len()) as u64;
                if log.window.records_in + 1 > 1000 || log.window.bytes_in + bytes > 1024 * 1024 {
                    outcomes[at] = Some(PutOutcome::Rejected(Rejection::ThroughputExceeded {
                        stream: self.stream_name(&stream.name),
                        shard: shard.id.clone(),
                    }));
                    continue;
                }
                log.window.records_in += 1;
                log.window.bytes_in += bytes;
            }
            let counter = self.next_counter();
            let stored = Record {
                counter,
                arrival_ms: now,
                partition_key: record.partition_key,
                data: record.data,
            };
            if shard.files.is_some() {
                log::encode_frame(&mut frames, &stored);
            }
            log.records.push_back(stored);
            first_counter.get_or_insert(counter);
            last_counter = counter;
            outcomes[at] = Some(PutOutcome::Stored {
                shard_id: shard.id.clone(),
                sequence_number: stream.sequence_number(counter, shard.index),
            });
        }
        let Some(first_counter) = first_counter else {
            return Vec::new();
        };
        match &shard.files {
            None => {
                log.visible_counter = log.visible_counter.max(last_counter);
                drop(log);
                shard.changed.send_modify(|v| *v += 1);
            }
            Some(files) => {
                let (tx, rx) = oneshot::channel();
                let visible_shard = Arc::clone(shard);
                let committer = &self
                    .durable
                    .as_ref()
                    .expect("files imply a durable store")
                    .committer;
                // Queued under the shard lock, so the committer writes this shard's records in
                // counter order.
                let append = log::Append {
                    first_counter,
                    newest_arrival_ms: now,
                    bytes: frames,
                };
                committer.submit(
                    files,
                    append,
                    Box::new(move |result| {
                        let mut log = visible_shard.lock();
                        match &result {
                            Ok(()) => log.visible_counter = log.visible_counter.max(last_counter),
                            Err(err) => {
                                // Never acknowledged, never readable: drop them, and refuse
                                // further writes to a log whose tail is unknown.
                                log.records.retain(|r| r.counter < first_counter || r.counter > last_counter);
                                log.write_failed = Some(err.to_string());
                                tracing::error!(shard = %visible_shard.id, error = %err, "shard log write failed");
                            }
                        }
                        drop(log);
                        visible_shard.changed.send_modify(|v| *v += 1);
                        let _ = tx.send(result);
                    }),
                );
                waits.push(rx);
            }
        }
        Vec::new()
    }

    /// Drops records older than each stream's retention period, in memory and on disk.
    pub(crate) fn enforce_retention(&self) {
        let now = self.now_ms();
        for stream in self.streams() {
            let (retention_hours, shards) = {
                let state = stream.lock();
                (state.settings.retention_hours, state.shards.clone())
            };
            let cutoff = now - retention_ms(retention_hours);
            for shard in shards {
                let mut log = shard.lock();
                while log
                    .records
                    .front()
                    .is_some_and(|r| r.arrival_ms < cutoff && r.counter <= log.visible_counter)
                {
                    log.records.pop_front();
                }
                drop(log);
                if let Some(files) = &shard.files {
                    if let Err(err) = files.with(|files| files.drop_expired(cutoff)) {
                        tracing::warn!(error = %err, shard = %shard.id, "retention delete failed");
                    }
                }
            }
        }
    }
}
