//! Receiving records and settling them: acknowledge, change visibility, restore dead letters.

use super::*;

// ReceiveQueueRecords and ReceiveDeadLetterQueueRecords.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveInput {
    #[serde(rename = "QueueARN")]
    pub(super) queue_arn: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) wait_time_seconds: Option<i64>,
    pub(super) visibility_timeout_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueRecord {
    pub(super) receipt_handle: String,
    pub(super) record_id: String,
    pub(super) partition_key: String,
    pub(super) data: String,
    pub(super) approximate_arrival_timestamp: f64,
    pub(super) first_receive_timestamp: f64,
    pub(super) receive_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveOutput {
    pub(super) queue_records: Vec<QueueRecord>,
}

pub(crate) async fn receive(store: &KinesisStore, input: ReceiveInput) -> ApiResult<ReceiveOutput> {
    receive_on(store, input, Path::Normal).await
}

pub(crate) async fn receive_dead_letters(
    store: &KinesisStore,
    input: ReceiveInput,
) -> ApiResult<ReceiveOutput> {
    receive_on(store, input, Path::DeadLetter).await
}

pub(super) async fn receive_on(
    store: &KinesisStore,
    input: ReceiveInput,
    path: Path,
) -> ApiResult<ReceiveOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    validate_range(input.limit, 1, 10, "limit")?;
    validate_range(input.wait_time_seconds, 1, 20, "waitTimeSeconds")?;
    validate_range(
        input.visibility_timeout_seconds,
        0,
        43_200,
        "visibilityTimeoutSeconds",
    )?;
    let limit = input.limit.unwrap_or(DEFAULT_RECEIVE_LIMIT) as usize;
    let wait = Duration::from_secs(input.wait_time_seconds.unwrap_or(DEFAULT_WAIT_SECS) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let stream = queue_stream(store, arn)?;
        // Subscribed before looking, so a record appended (or made visible by another
        // request) between the look and the wait still wakes this receive.
        let mut signals: Vec<watch::Receiver<u64>> = stream
            .lock()
            .shards
            .iter()
            .map(|shard| shard.changed.subscribe())
            .chain(std::iter::once(
                store.dependents().queues_changed.subscribe(),
            ))
            .collect();
        let (delivered, next_visible_ms) = receive_once(
            store,
            arn,
            &stream,
            path,
            limit,
            input.visibility_timeout_seconds,
        )?;
        if !delivered.is_empty() {
            return Ok(ReceiveOutput {
                queue_records: delivered
                    .into_iter()
                    .map(|d| queue_record(d, &stream))
                    .collect(),
            });
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(ReceiveOutput {
                queue_records: Vec::new(),
            });
        }
        // Nothing signals a visibility timeout running out: that alone is waited for on the
        // clock.
        let wake_at = next_visible_ms.map_or(deadline, |at| {
            let in_ms = (at - store.now_ms()).max(1) as u64;
            deadline.min(now + Duration::from_millis(in_ms))
        });
        let any_signal =
            futures::future::select_all(signals.iter_mut().map(|s| Box::pin(s.changed())));
        tokio::select! {
            // A sender that is gone (its stream was removed) counts as a change: the next
            // look reports what happened.
            _ = any_signal => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// The stream of the queue `arn` names, if the queue delivers records now.
pub(super) fn queue_stream(store: &KinesisStore, arn: &str) -> ApiResult<Arc<Stream>> {
    let queue = locate_queue(store, arn)?;
    let status = queue.status;
    if !delivers(status) {
        return Err(ApiError::invalid_argument(format!(
            "Queue {arn} is {}; it delivers records only while ACTIVE.",
            status.wire_name()
        )));
    }
    // Resolve the stream before taking the queues' lock: the lookup may purge deleted
    // streams, which saves metadata, which takes that lock.
    Ok(store.stream(&queue.stream_name)?)
}

/// One attempt at a receive from `stream`, the queue's stream: the records handed out, and
/// when the next record in flight becomes visible again.
pub(super) fn receive_once(
    store: &KinesisStore,
    arn: &str,
    stream: &Stream,
    path: Path,
    limit: usize,
    visibility_override: Option<i64>,
) -> ApiResult<(Vec<Delivered>, Option<i64>)> {
    let (delivered, before, next_visible_ms) = with_queue(store, arn, |queue, now| {
        // The shard list is read under the queues' lock, so no receive works from a list
        // older than the delivery state it changes.
        let source = ShardsSource(stream.lock().shards.clone());
        let before = store.is_durable().then(|| queue.delivery.clone());
        let visibility_secs =
            visibility_override.unwrap_or(i64::from(queue.visibility_timeout_secs));
        let request = ReceiveRequest {
            now_ms: now,
            limit,
            visibility_ms: visibility_secs * 1000,
            queue_serial: queue.serial,
        };
        let max = queue.max_receive_count;
        let delivered = match path {
            Path::Normal => queue.delivery.receive(&source, queue.start, max, &request),
            Path::DeadLetter => queue.delivery.receive_dead_letters(&source, max, &request),
        };
        if !delivered.is_empty() {
            note_delivery_change(queue, before.as_ref());
        }
        Ok((delivered, before, queue.delivery.next_visible_ms(now)))
    })?;
    if !delivered.is_empty() {
        // Not waited for: see "Durability" in the queue model's documentation.
        store.keep_dependent_unsynced(arn, || restore_delivery(store, arn, before))?;
    }
    Ok((delivered, next_visible_ms))
}

pub(super) fn queue_record(delivered: Delivered, stream: &Stream) -> QueueRecord {
    QueueRecord {
        receipt_handle: delivered.handle.encode(),
        // The record's sequence number: the same in every delivery and in every queue on the
        // stream, as the service's record ids are.
        record_id: stream.sequence_number(delivered.record.counter, delivered.shard),
        partition_key: delivered.record.partition_key.to_string(),
        data: base64::engine::general_purpose::STANDARD.encode(&delivered.record.data),
        approximate_arrival_timestamp: epoch_seconds(delivered.record.arrival_ms),
        first_receive_timestamp: epoch_seconds(delivered.first_receive_ms),
        receive_count: delivered.receive_count,
    }
}

// The batch operations.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchEntry {
    pub(super) receipt_handle: Option<String>,
    pub(super) visibility_timeout_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchInput {
    #[serde(rename = "QueueARN")]
    pub(super) queue_arn: Option<String>,
    pub(super) entries: Option<Vec<BatchEntry>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Succeeded {
    pub(super) receipt_handle: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Failed {
    pub(super) receipt_handle: String,
    pub(super) error_code: &'static str,
    pub(super) error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchOutput {
    pub(super) successful: Vec<Succeeded>,
    pub(super) failed: Vec<Failed>,
}

/// What a batch operation does to one record.
#[derive(Debug, Clone, Copy)]
pub(super) enum BatchAction {
    Acknowledge(Path),
    ChangeVisibility(Path),
    Restore,
}

pub(crate) async fn acknowledge(store: &KinesisStore, input: BatchInput) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Acknowledge(Path::Normal)).await
}

pub(crate) async fn acknowledge_dead_letters(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Acknowledge(Path::DeadLetter)).await
}

pub(crate) async fn change_visibility(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::ChangeVisibility(Path::Normal)).await
}

pub(crate) async fn change_dead_letter_visibility(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(
        store,
        input,
        BatchAction::ChangeVisibility(Path::DeadLetter),
    )
    .await
}

pub(crate) async fn restore_dead_letters(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Restore).await
}

pub(super) async fn batch(
    store: &KinesisStore,
    input: BatchInput,
    action: BatchAction,
) -> ApiResult<BatchOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    let entries = required(&input.entries, "entries")?;
    check_count(entries, 1, 10, "entries")?;
    for (at, entry) in entries.iter().enumerate() {
        let member = format!("entries.{}.member", at + 1);
        check_length(
            required(&entry.receipt_handle, &format!("{member}.receiptHandle"))?,
            1,
            1024,
            &format!("{member}.receiptHandle"),
        )?;
        if let BatchAction::ChangeVisibility(_) = action {
            let seconds = *required(
                &entry.visibility_timeout_seconds,
                &format!("{member}.visibilityTimeoutSeconds"),
            )?;
            if !(0..=43_200).contains(&seconds) {
                return Err(invalid(
                    seconds,
                    &format!("{member}.visibilityTimeoutSeconds"),
                    "Member must have value between 0 and 43200",
                ));
            }
        }
    }
    let queue = locate_queue(store, arn)?;
    let stream = store.stream(&queue.stream_name)?;
    let mut output = BatchOutput {
        successful: Vec::new(),
        failed: Vec::new(),
    };
    let before = with_queue(store, arn, |queue, now| {
        let source = ShardsSource(stream.lock().shards.clone());
        let before = store.is_durable().then(|| queue.delivery.clone());
        queue.delivery.settle(now, queue.max_receive_count);
        let deleting = queue.status(now) == Status::Deleting;
        for entry in entries {
            let text = entry.receipt_handle.clone().unwrap_or_default();
            let outcome = match ReceiptHandle::decode(&text) {
                _ if deleting => Err(EntryError::Invalid(
                    "The queue is being deleted: its receipt handles are no longer valid."
                        .to_owned(),
                )),
                Some(handle) if handle.queue_serial == queue.serial => match action {
                    BatchAction::Acknowledge(path) => {
                        queue.delivery.acknowledge(&source, &handle, path)
                    }
                    BatchAction::ChangeVisibility(path) => queue.delivery.change_visibility(
                        &source,
                        &handle,
                        path,
                        now,
                        entry.visibility_timeout_seconds.unwrap_or_default() * 1000,
                    ),
                    BatchAction::Restore => queue.delivery.restore(&source, &handle, now),
                },
                Some(_) => Err(EntryError::Invalid(
                    "The receipt handle was issued by another queue.".to_owned(),
                )),
                None => Err(EntryError::Invalid(
                    "The receipt handle is not valid.".to_owned(),
                )),
            };
            match outcome {
                Ok(()) => output.successful.push(Succeeded {
                    receipt_handle: text,
                }),
                Err(EntryError::Invalid(message)) => output.failed.push(Failed {
                    receipt_handle: text,
                    error_code: "InvalidArgumentException",
                    error_message: message,
                }),
                Err(EntryError::NotFound(message)) => output.failed.push(Failed {
                    receipt_handle: text,
                    error_code: "ResourceNotFoundException",
                    error_message: message,
                }),
            }
        }
        if !output.successful.is_empty() {
            note_delivery_change(queue, before.as_ref());
        }
        Ok(before)
    })?;
    if !output.successful.is_empty() {
        // Answered only once durable: an acknowledged record must not come back after a crash.
        store
            .keep_dependent_or_undo_async(arn, || restore_delivery(store, arn, before))
            .await?;
        // Records made visible again or restored are there for receives already waiting.
        store.dependents().wake_receives();
    }
    Ok(output)
}

/// Notes for the metadata journal what a receive or batch operation just changed in `queue`'s
/// delivery state, `before` being the state it started from (`None` in memory: nothing is
/// journaled). Called under the queues' lock, in the order the changes are made.
fn note_delivery_change(queue: &mut QueueMeta, before: Option<&model::Delivery>) {
    if let Some(before) = before {
        let delta = queue.delivery.delta_since(before);
        queue.unjournaled.add_delivery(delta);
    }
}

/// Puts back the delivery state `before` of the queue `arn`, after a change to it could not
/// be saved: no record is answered as settled that was not kept.
fn restore_delivery(store: &KinesisStore, arn: &str, before: Option<model::Delivery>) {
    let Some(before) = before else {
        return;
    };
    if let Some(queue) = store
        .dependents()
        .queues()
        .iter_mut()
        .find(|q| q.arn == arn)
    {
        queue.delivery = before;
        // The journal may hold the undone change (or later ones this undoes too): only the
        // whole queue, as it is now, sets it right.
        queue.unjournaled = model::Unjournaled::Whole;
    }
}
