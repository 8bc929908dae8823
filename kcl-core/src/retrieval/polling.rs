//! Polling retrieval: a task per shard calls GetRecords and fills a bounded prefetch queue.
//!
//! The queue is bounded three ways (batches, records, bytes): a batch waits for permits of
//! both semaphores, which it carries until the processor is done with it, so memory stays
//! bounded whatever the backlog. GetRecords is called again at once while the shard has
//! records; only an empty answer waits `idle_time_between_reads`.

use std::time::Duration;

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    child_shard, retry_or_stop, sleep_unless_cancelled, sort, Batch, Failure, FetchError, Fetcher,
    Prefetch, PrefetchedBatch, StartingPoint, StreamTarget, FIRST_BACKOFF,
};
use crate::config::PollingConfig;
use crate::record::KinesisClientRecord;

/// Starts a task polling `shard_id` of `stream` from `start`; returns the consumer's end.
pub(crate) fn start(
    client: aws_sdk_kinesis::Client,
    stream: StreamTarget,
    shard_id: String,
    start: StartingPoint,
    config: PollingConfig,
) -> Fetcher {
    let prefetch = Prefetch::new(config.max_prefetch_records, config.max_prefetch_bytes);
    let (fetcher, sender, cancel) = Fetcher::channel(config.max_prefetch_batches);
    let task = FetchTask {
        client,
        stream,
        shard_id,
        prefetch,
        config,
        sender,
        cancel,
    };
    tokio::spawn(task.run(start));
    fetcher
}

struct FetchTask {
    client: aws_sdk_kinesis::Client,
    stream: StreamTarget,
    shard_id: String,
    config: PollingConfig,
    prefetch: Prefetch,
    sender: mpsc::Sender<Result<PrefetchedBatch, FetchError>>,
    cancel: CancellationToken,
}

impl FetchTask {
    async fn sleep(&self, delay: Duration) -> bool {
        sleep_unless_cancelled(&self.cancel, delay).await
    }

    async fn iterator(&self, start: &StartingPoint) -> Result<Option<String>, Failure> {
        let mut request = self
            .client
            .get_shard_iterator()
            .set_stream_name(self.stream.name.clone())
            .set_stream_arn(self.stream.arn.clone())
            .shard_id(&self.shard_id);
        request = match start {
            StartingPoint::TrimHorizon => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            StartingPoint::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            StartingPoint::AtTimestamp(at) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from(*at)),
            StartingPoint::AtSequence(seq) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(seq),
            StartingPoint::AfterSequence(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            StartingPoint::Done => return Ok(None),
        };
        request
            .send()
            .await
            .map(|out| out.shard_iterator)
            .map_err(sort)
    }

    async fn run(self, start: StartingPoint) {
        let mut start = start;
        let mut iterator: Option<String> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let current = match iterator.take() {
                Some(it) => it,
                None => match self.iterator(&start).await {
                    Ok(Some(it)) => it,
                    Ok(None) => {
                        let batch = self.prefetch.wrap(Batch::already_ended(), 0).await;
                        let _ = self.sender.send(Ok(batch)).await;
                        return;
                    }
                    Err(failure) => {
                        if !self.handle(failure, &mut backoff).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let called = std::time::Instant::now();
            let response = self
                .client
                .get_records()
                .shard_iterator(&current)
                .limit(self.config.max_records)
                .send()
                .await;
            metrics::histogram!("kcl_get_records_seconds").record(called.elapsed().as_secs_f64());
            let out = match response {
                Ok(out) => out,
                Err(err) => {
                    match sort(err) {
                        // Restart after the last record fetched: nothing is delivered twice.
                        Failure::Expired => iterator = None,
                        failure => {
                            iterator = Some(current);
                            if !self.handle(failure, &mut backoff).await {
                                return;
                            }
                        }
                    }
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            let mut bytes = 0;
            let records: Vec<KinesisClientRecord> = out
                .records()
                .iter()
                .map(|r| {
                    bytes += r.data().as_ref().len();
                    KinesisClientRecord::from(r)
                })
                .collect();
            if let Some(last) = records.last() {
                start = StartingPoint::AfterSequence(last.sequence_number.clone());
            }
            let at_end = out.next_shard_iterator().is_none();
            let child_shards = at_end.then(|| out.child_shards().iter().map(child_shard).collect());
            let empty = records.is_empty();
            if !empty || at_end {
                let batch = Batch {
                    records,
                    millis_behind_latest: out.millis_behind_latest(),
                    child_shards,
                };
                let prefetched = tokio::select! {
                    () = self.cancel.cancelled() => return,
                    batch = self.prefetch.wrap(batch, bytes) => batch,
                };
                if self.sender.send(Ok(prefetched)).await.is_err() {
                    return;
                }
            }
            if at_end {
                return;
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
            if empty && !self.sleep(self.config.idle_time_between_reads).await {
                return;
            }
        }
    }

    async fn handle(&self, failure: Failure, backoff: &mut Duration) -> bool {
        retry_or_stop(&self.shard_id, &self.sender, &self.cancel, failure, backoff).await
    }
}
