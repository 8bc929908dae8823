//! SubscribeToShard: enhanced fan-out as an `application/vnd.amazon.eventstream` response.
//!
//! The response opens with an `initial-response` event, then carries `SubscribeToShardEvent`s.
//! A subscriber task per subscription waits on the shard's change signal, so a record is pushed
//! as soon as it becomes visible (no polling interval). When idle it still sends an empty event
//! every [`HEARTBEAT`], which lets clients tell a quiet shard from a dead connection. The
//! subscription ends after the configured lifetime (5 minutes on AWS), at the end of a closed
//! shard (final event: no continuation sequence number, the child shards), or when the consumer
//! is deregistered.
//!
//! Flow control: events go through a channel of [`EVENT_BUFFER`] frames that the HTTP layer
//! drains only as fast as the client reads. When it is full the subscriber task waits, so a
//! slow subscriber holds at most that many batches in memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::consumers::resolve_consumer_arn;
use super::records::{iterator_position, read_batch, ChildShard, RecordOutput};
use crate::kinesis::model::{Clock, Shard, Status, Stream};
use crate::kinesis::request::validate::check_shard_id;
use crate::kinesis::KinesisStore;
use crate::wire::codec::{self, Format};
use crate::wire::event_stream::{event, exception};
use crate::wire::{ApiError, ApiResult};

/// Idle subscriptions get an empty event this often.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Frames buffered per subscription before the subscriber waits for the client.
const EVENT_BUFFER: usize = 4;
/// Most records in one event.
const MAX_EVENT_RECORDS: usize = 10_000;
/// Most bytes in one event: one second of the 2 MiB/s per-consumer budget.
const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StartingPosition {
    #[serde(rename = "Type")]
    kind: String,
    sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    shard_id: String,
    starting_position: StartingPosition,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent {
    records: Vec<RecordOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_sequence_number: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<ChildShard>>,
}

/// The first frame of every subscription.
fn initial_response(format: Format, content_type: &str) -> Bytes {
    event(
        "initial-response",
        content_type,
        codec::encode_value(format, &serde_json::json!({})),
    )
}

/// The frame of one batch of records.
fn records_event(format: Format, content_type: &str, payload: &SubscribeToShardEvent) -> Bytes {
    event(
        "SubscribeToShardEvent",
        content_type,
        codec::encode(format, payload),
    )
}

/// The frames a subscription in `format` sends: the initial response, an event carrying
/// `records`, and the exception that ends it with `error`. For fuzzing the event-stream framing.
pub(crate) fn subscription_frames(
    format: Format,
    records: Vec<RecordOutput>,
    continuation_sequence_number: Option<String>,
    millis_behind_latest: i64,
    error: &ApiError,
) -> [Bytes; 3] {
    let content_type = format.content_type("1.1");
    let payload = SubscribeToShardEvent {
        records,
        continuation_sequence_number,
        millis_behind_latest,
        child_shards: None,
    };
    [
        initial_response(format, &content_type),
        records_event(format, &content_type, &payload),
        exception(error, format, &content_type),
    ]
}

/// Validates the request and starts the subscriber task. Errors found before the stream opens
/// (unknown consumer or shard, a second live subscription) are ordinary error responses.
pub(crate) fn subscribe(
    kinesis: &KinesisStore,
    format: Format,
    body: &[u8],
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let input: SubscribeInput = codec::decode(format, body)?;
    check_shard_id(&input.shard_id, "shardId")?;
    let (stream, consumer) = resolve_consumer_arn(kinesis, &input.consumer_arn)?;
    if consumer.status(kinesis.now_ms()) != Status::Active {
        return Err(ApiError::in_use(format!(
            "Consumer {} under stream {} is not ACTIVE.",
            consumer.arn, stream.name
        )));
    }
    let shard = stream
        .lock()
        .shard(&input.shard_id, kinesis.now_ms())
        .cloned()
        .ok_or_else(|| kinesis.shard_not_found(&stream.name, &input.shard_id))?;
    let position = iterator_position(
        &stream,
        &shard,
        &input.starting_position.kind,
        input.starting_position.sequence_number.as_deref(),
        input.starting_position.timestamp,
    )?;
    let Some(live) = kinesis
        .subscriptions
        .claim(&consumer.arn, &shard.id, kinesis.now_ms())
    else {
        return Err(ApiError::in_use(format!(
            "Another active subscription exists for consumer {} and shard {}.",
            consumer.arn, shard.id
        )));
    };
    let (frames, receiver) = mpsc::channel::<Bytes>(EVENT_BUFFER);
    let content_type = format.content_type("1.1");
    // The task outlives the request that started it: it takes what it needs of the store.
    let lifetime = kinesis.config.subscription_lifetime;
    let clock = Arc::clone(&kinesis.clock);
    tokio::spawn(async move {
        let taken_over = live.taken_over();
        let _live = live;
        let run = Subscriber {
            stream,
            shard,
            consumer_arn: consumer.arn,
            clock,
            format,
            content_type,
            frames,
            taken_over,
        };
        run.run(position, lifetime).await;
    });
    Ok(receiver)
}

struct Subscriber {
    stream: Arc<Stream>,
    shard: Arc<Shard>,
    consumer_arn: String,
    /// The store's clock, shared: the task outlives the request that started it.
    clock: Arc<Clock>,
    format: Format,
    content_type: String,
    frames: mpsc::Sender<Bytes>,
    /// Fires when a later SubscribeToShard for the same consumer and shard took over.
    taken_over: CancellationToken,
}

impl Subscriber {
    /// Sends `frame`; `false` once the client is gone or the subscription was taken over (a
    /// silent client whose buffers are full must not hold this task forever).
    async fn send(&self, frame: Bytes) -> bool {
        tokio::select! {
            sent = self.frames.send(frame) => sent.is_ok(),
            () = self.taken_over.cancelled() => false,
        }
    }

    fn consumer_active(&self) -> bool {
        let now = self.clock.now_ms();
        let state = self.stream.lock();
        !state.settings.deleted(now)
            && state
                .settings
                .consumers
                .iter()
                .any(|c| c.arn == self.consumer_arn && c.deleting_until.is_none())
    }

    async fn run(self, mut position: u64, lifetime: Duration) {
        if !self
            .send(initial_response(self.format, &self.content_type))
            .await
        {
            return;
        }
        let deadline = tokio::time::Instant::now() + lifetime;
        let mut changes = self.shard.changed.subscribe();
        loop {
            // Mark the current state seen before reading, so a change made during the read
            // wakes the next wait instead of being missed.
            changes.borrow_and_update();
            if !self.consumer_active() {
                let error = ApiError::not_found(format!(
                    "Consumer {} was deregistered.",
                    self.consumer_arn
                ));
                let _ = self
                    .send(exception(&error, self.format, &self.content_type))
                    .await;
                return;
            }
            let batch = read_batch(
                &self.stream,
                &self.shard,
                position,
                MAX_EVENT_RECORDS,
                MAX_EVENT_BYTES,
                self.clock.now_ms(),
            );
            let at_end = batch.child_shards.is_some();
            let more_available = batch.more_available;
            position = batch.next_position;
            let continuation = (!at_end).then(|| {
                self.stream
                    .sequence_number(position.max(1) - 1, self.shard.index)
            });
            let payload = SubscribeToShardEvent {
                records: batch.records,
                continuation_sequence_number: continuation,
                millis_behind_latest: batch.millis_behind_latest,
                child_shards: batch.child_shards,
            };
            if !self
                .send(records_event(self.format, &self.content_type, &payload))
                .await
            {
                return;
            }
            if at_end {
                return;
            }
            if more_available {
                continue; // the batch limit cut it short: no need to wait
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = self.taken_over.cancelled() => {
                    let error = ApiError::in_use(format!(
                        "Another subscription for consumer {} and shard {} took over this one.",
                        self.consumer_arn, self.shard.id
                    ));
                    // Only if there is room: a client that stopped reading gets nothing more.
                    let _ = self
                        .frames
                        .try_send(exception(&error, self.format, &self.content_type));
                    return;
                }
                changed = changes.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(HEARTBEAT) => {}
                // The client went away: free the consumer-and-shard slot at once, so whoever
                // takes over the shard can subscribe without waiting for a heartbeat to fail.
                () = self.frames.closed() => return,
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }
}
