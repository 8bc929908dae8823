//! Enhanced fan-out retrieval: one SubscribeToShard event stream per shard, renewed for as
//! long as the lease is held.
//!
//! A subscription ends after five minutes (on AWS), on a network error, or when the service
//! goes quiet; each time the task subscribes again AFTER the last continuation sequence number
//! it saw, so nothing is skipped and nothing delivered twice. The event stream is only read
//! when the prefetch queue has room, so a slow processor slows the connection (HTTP flow
//! control), not memory.

use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use tokio_util::sync::CancellationToken;

use super::{
    child_shard, retry_or_stop, sdk_error_message, sort, Batch, BatchSender, Failure, Fetcher,
    Prefetch, StartingPoint, StreamTarget, FIRST_BACKOFF,
};
use crate::config::FanOutConfig;
use crate::error::{Error, Result};
use crate::record::KinesisClientRecord;

/// How long registration may take before the scheduler gives up. AWS usually needs seconds.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(180);

/// Returns the ARN of the ACTIVE consumer `name` of `stream`, registering it if it does not
/// exist and waiting while it is being created (or, after a deregistration, deleted).
/// Several workers of one application may do this at once: the loser of the registration
/// race simply finds the winner's consumer.
///
/// # Errors
/// When the stream does not exist, a call fails for good, or the consumer does not become
/// ACTIVE within a few minutes.
pub(crate) async fn ensure_consumer(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamTarget,
    name: &str,
) -> Result<String> {
    let stream_arn = stream_arn(client, stream).await?;
    let deadline = tokio::time::Instant::now() + REGISTRATION_TIMEOUT;
    let mut backoff = FIRST_BACKOFF;
    let mut registered = false;
    loop {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Kinesis {
                operation: "RegisterStreamConsumer",
                message: format!(
                    "consumer {name} did not become ACTIVE within {REGISTRATION_TIMEOUT:?}"
                ),
            });
        }
        let described = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await;
        match described {
            Ok(out) => {
                let consumer = out.consumer_description().ok_or_else(|| Error::Kinesis {
                    operation: "DescribeStreamConsumer",
                    message: "the answer has no ConsumerDescription".to_owned(),
                })?;
                if *consumer.consumer_status() == ConsumerStatus::Active {
                    tracing::info!(
                        consumer = name,
                        arn = consumer.consumer_arn(),
                        "using enhanced fan-out consumer"
                    );
                    return Ok(consumer.consumer_arn().to_owned());
                }
                tracing::debug!(consumer = name, status = %consumer.consumer_status(), "waiting for the consumer");
            }
            Err(err) if err.code() == Some("ResourceNotFoundException") && !registered => {
                match client
                    .register_stream_consumer()
                    .stream_arn(&stream_arn)
                    .consumer_name(name)
                    .send()
                    .await
                {
                    Ok(_) => {
                        tracing::info!(consumer = name, stream = %stream_arn, "registered enhanced fan-out consumer");
                        registered = true;
                    }
                    // Another worker registered it first, or an old one is still being deleted.
                    Err(err) if err.code() == Some("ResourceInUseException") => {}
                    Err(err) if is_throttling(err.code()) => {}
                    Err(err) => {
                        return Err(Error::Kinesis {
                            operation: "RegisterStreamConsumer",
                            message: sdk_error_message(&err),
                        })
                    }
                }
                continue;
            }
            // Registered by us but not visible yet: wait like for CREATING.
            Err(err) if err.code() == Some("ResourceNotFoundException") => {}
            Err(err) if is_throttling(err.code()) || err.as_service_error().is_none() => {}
            Err(err) => {
                return Err(Error::Kinesis {
                    operation: "DescribeStreamConsumer",
                    message: sdk_error_message(&err),
                })
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn is_throttling(code: Option<&str>) -> bool {
    matches!(code, Some("LimitExceededException" | "ThrottlingException"))
}

/// The stream's ARN, looked up when only its name is known (consumers are registered by ARN).
async fn stream_arn(client: &aws_sdk_kinesis::Client, stream: &StreamTarget) -> Result<String> {
    if let Some(arn) = &stream.arn {
        return Ok(arn.clone());
    }
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..8 {
        match client
            .describe_stream_summary()
            .set_stream_name(stream.name.clone())
            .send()
            .await
        {
            Ok(out) => {
                if let Some(summary) = out.stream_description_summary() {
                    return Ok(summary.stream_arn().to_owned());
                }
            }
            Err(err) if is_throttling(err.code()) || err.as_service_error().is_none() => {}
            Err(err) => {
                return Err(Error::Kinesis {
                    operation: "DescribeStreamSummary",
                    message: sdk_error_message(&err),
                })
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    Err(Error::Kinesis {
        operation: "DescribeStreamSummary",
        message: "no answer after 8 attempts".to_owned(),
    })
}

/// Starts a task subscribing `consumer_arn` to `shard_id` from `start`; returns the
/// consumer's end.
pub(crate) fn start(
    client: aws_sdk_kinesis::Client,
    consumer_arn: String,
    shard_id: String,
    start: StartingPoint,
    config: FanOutConfig,
) -> Fetcher {
    let prefetch = Prefetch::new(config.max_prefetch_records, config.max_prefetch_bytes);
    let (fetcher, sender, cancel) = Fetcher::channel(config.max_prefetch_batches);
    let task = SubscribeTask {
        client,
        consumer_arn,
        shard_id,
        config,
        prefetch,
        sender,
        cancel,
    };
    tokio::spawn(task.run(start));
    fetcher
}

struct SubscribeTask {
    client: aws_sdk_kinesis::Client,
    consumer_arn: String,
    shard_id: String,
    config: FanOutConfig,
    prefetch: Prefetch,
    sender: BatchSender,
    cancel: CancellationToken,
}

/// How one subscription ended.
enum Ended {
    /// The shard is finished (its final batch was sent), or the consumer's end went away.
    Stop,
    /// Subscribe again from the last continuation, at once.
    Renew,
    /// Subscribe again after a back-off.
    Failed(Failure),
}

impl SubscribeTask {
    async fn run(self, start: StartingPoint) {
        let mut start = start;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let Some(position) = starting_position(&start) else {
                // Already at SHARD_END: tell the consumer at once.
                let batch = self.prefetch.wrap(Batch::already_ended(), 0).await;
                let _ = self.sender.send(Ok(batch)).await;
                return;
            };
            match self.subscribe_once(position, &mut start).await {
                Ended::Stop => return,
                Ended::Renew => backoff = FIRST_BACKOFF,
                Ended::Failed(failure) => {
                    if !retry_or_stop(
                        &self.shard_id,
                        &self.sender,
                        &self.cancel,
                        failure,
                        &mut backoff,
                    )
                    .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// One subscription, read until it ends. `start` follows every event, so the next
    /// subscription continues where this one stopped.
    async fn subscribe_once(&self, position: StartingPosition, start: &mut StartingPoint) -> Ended {
        let subscribed = tokio::select! {
            () = self.cancel.cancelled() => return Ended::Stop,
            out = self
                .client
                .subscribe_to_shard()
                .consumer_arn(&self.consumer_arn)
                .shard_id(&self.shard_id)
                .starting_position(position)
                .send() => out,
        };
        let mut events = match subscribed {
            Ok(out) => out.event_stream,
            Err(err) => return Ended::Failed(sort_subscribe_error(err)),
        };
        tracing::debug!(shard = %self.shard_id, "subscribed");
        let mut events_seen = 0u64;
        loop {
            let received = tokio::select! {
                () = self.cancel.cancelled() => return Ended::Stop,
                received = tokio::time::timeout(self.config.silent_subscription_timeout, events.recv()) => received,
            };
            let event = match received {
                Err(_) => {
                    tracing::warn!(
                        shard = %self.shard_id,
                        silent_for = ?self.config.silent_subscription_timeout,
                        "the subscription went silent; subscribing again"
                    );
                    metrics::counter!("kcl_fanout_silent_subscriptions_total").increment(1);
                    return Ended::Renew;
                }
                // The service ended the subscription (its lifetime is up): renew it, unless it
                // ended before delivering anything, which would otherwise spin.
                Ok(Ok(None)) if events_seen > 0 => return Ended::Renew,
                Ok(Ok(None)) => {
                    return Ended::Failed(Failure::Transient(
                        "the subscription ended before its first event".to_owned(),
                    ))
                }
                Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)))) => {
                    events_seen += 1;
                    event
                }
                Ok(Ok(Some(other))) => {
                    tracing::debug!(shard = %self.shard_id, event = ?other, "ignoring an unknown event");
                    continue;
                }
                Ok(Err(err)) => return Ended::Failed(sort(err)),
            };
            match self.deliver(event, start).await {
                Some(ended) => return ended,
                None => continue,
            }
        }
    }

    /// Hands one event to the consumer; `Some` when the subscription should end.
    async fn deliver(
        &self,
        event: SubscribeToShardEvent,
        start: &mut StartingPoint,
    ) -> Option<Ended> {
        let mut bytes = 0;
        let records: Vec<KinesisClientRecord> = event
            .records()
            .iter()
            .map(|r| {
                bytes += r.data().as_ref().len();
                KinesisClientRecord::from(r)
            })
            .collect();
        let continuation = event.continuation_sequence_number();
        let at_end = continuation.is_empty() || !event.child_shards().is_empty();
        if !continuation.is_empty() {
            *start = StartingPoint::AfterSequence(continuation.to_owned());
        } else if let Some(last) = records.last() {
            *start = StartingPoint::AfterSequence(last.sequence_number.clone());
        }
        if records.is_empty() && !at_end {
            return None; // a heartbeat: it only moved the continuation
        }
        let batch = Batch {
            records,
            millis_behind_latest: Some(event.millis_behind_latest()),
            child_shards: at_end.then(|| event.child_shards().iter().map(child_shard).collect()),
        };
        let batch = tokio::select! {
            () = self.cancel.cancelled() => return Some(Ended::Stop),
            batch = self.prefetch.wrap(batch, bytes) => batch,
        };
        if self.sender.send(Ok(batch)).await.is_err() || at_end {
            return Some(Ended::Stop);
        }
        None
    }
}

/// SubscribeToShard's errors sort like any read's, except ResourceInUseException: another
/// subscription of this consumer to this shard is still open (say, one of a worker that lost
/// the lease a moment ago). It ends soon, so it is waited out with back-off, like throttling.
fn sort_subscribe_error<E, R>(err: aws_sdk_kinesis::error::SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if err.code() == Some("ResourceInUseException") {
        return Failure::InUse(sdk_error_message(&err));
    }
    sort(err)
}

/// The SubscribeToShard starting position for `start`; `None` when the shard is done.
fn starting_position(start: &StartingPoint) -> Option<StartingPosition> {
    let builder = StartingPosition::builder();
    let builder = match start {
        StartingPoint::TrimHorizon => builder.r#type(ShardIteratorType::TrimHorizon),
        StartingPoint::Latest => builder.r#type(ShardIteratorType::Latest),
        StartingPoint::AtTimestamp(at) => builder
            .r#type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*at)),
        StartingPoint::AtSequence(seq) => builder
            .r#type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(seq),
        StartingPoint::AfterSequence(seq) => builder
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        StartingPoint::Done => return None,
    };
    Some(builder.build().expect("the type is always set"))
}
