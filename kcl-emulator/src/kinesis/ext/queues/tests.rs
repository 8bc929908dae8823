use super::*;
use crate::kinesis::model::{CapacityMode, NewRecord, StreamSettings};
use crate::Config;

/// An in-memory store with an ACTIVE one-shard stream and a queue reading it.
async fn store_with_queue() -> (Arc<KinesisStore>, String) {
    let mut config = Config::embedded();
    config.create_delay = Duration::ZERO;
    store_with_queue_in(config).await
}

/// A store opened with `config`, with an ACTIVE one-shard stream and a queue reading it.
async fn store_with_queue_in(config: Config) -> (Arc<KinesisStore>, String) {
    let store = Arc::new(KinesisStore::open(&config).unwrap());
    store
        .create_stream(
            "waits",
            1,
            StreamSettings::new(0, 0, CapacityMode::OnDemand),
        )
        .unwrap();
    let stream_arn = store.stream("waits").unwrap().arn.clone();
    let input = serde_json::from_value(serde_json::json!({
        "QueueName": "waiter",
        "StreamConfigurationList": [{"StreamARN": stream_arn}],
    }))
    .unwrap();
    let created = create(&store, input).await.unwrap();
    (store, created.queue_description.queue_arn)
}

/// A long poll sleeps until a put signals the shard: it is subscribed to the shard's
/// signal while it waits, and with the clock paused it returns the record without any time
/// passing (a poll that looked again on a timer would need time to pass to see it).
#[tokio::test(start_paused = true)]
async fn a_long_poll_is_woken_by_the_put_not_by_a_timer() {
    let (store, queue_arn) = store_with_queue().await;
    let stream = store.stream("waits").unwrap();
    let shard = Arc::clone(&stream.lock().shards[0]);
    let started = tokio::time::Instant::now();
    let waiting = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let input = serde_json::from_value(serde_json::json!({
                "QueueARN": queue_arn,
                "WaitTimeSeconds": 20,
            }))
            .unwrap();
            receive(&store, input).await
        })
    };
    // Yielding keeps the paused clock still: the receive runs until it waits.
    for _ in 0..1000 {
        if shard.changed.receiver_count() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        shard.changed.receiver_count(),
        1,
        "the waiting receive listens to the shard's signal"
    );
    let record = NewRecord {
        partition_key: Arc::from("key"),
        data: bytes::Bytes::from_static(b"late"),
        hash: crate::kinesis::model::keys::partition_key_hash("key"),
    };
    store.append(&stream, vec![record]).await.unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(got.queue_records.len(), 1);
    assert_eq!(got.queue_records[0].partition_key, "key");
    assert_eq!(
        tokio::time::Instant::now(),
        started,
        "no timer fired: the put woke the receive"
    );
}

/// Records made visible by another request wake a waiting receive as a put does: the
/// record handed out with a long visibility timeout comes back as soon as its timeout is
/// set to zero, with no time passing.
#[tokio::test(start_paused = true)]
async fn a_long_poll_is_woken_when_another_request_makes_a_record_visible() {
    let (store, queue_arn) = store_with_queue().await;
    let stream = store.stream("waits").unwrap();
    let record = NewRecord {
        partition_key: Arc::from("key"),
        data: bytes::Bytes::from_static(b"once"),
        hash: crate::kinesis::model::keys::partition_key_hash("key"),
    };
    store.append(&stream, vec![record]).await.unwrap();
    let receive_input = |wait: i64| {
        serde_json::from_value::<ReceiveInput>(serde_json::json!({
            "QueueARN": queue_arn,
            "WaitTimeSeconds": wait,
            "VisibilityTimeoutSeconds": 3600,
        }))
        .unwrap()
    };
    let first = receive(&store, receive_input(1)).await.unwrap();
    let handle = first.queue_records[0].receipt_handle.clone();
    let started = tokio::time::Instant::now();
    let waiting = {
        let (store, input) = (Arc::clone(&store), receive_input(20));
        tokio::spawn(async move { receive(&store, input).await })
    };
    for _ in 0..1000 {
        if store.dependents().queues_changed.receiver_count() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.dependents().queues_changed.receiver_count(), 1);
    let input = serde_json::from_value(serde_json::json!({
        "QueueARN": queue_arn,
        "Entries": [{"ReceiptHandle": handle, "VisibilityTimeoutSeconds": 0}],
    }))
    .unwrap();
    let changed = change_visibility(&store, input).await.unwrap();
    assert_eq!(changed.successful.len(), 1);
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(got.queue_records.len(), 1);
    assert_eq!(got.queue_records[0].receive_count, 2);
    assert_eq!(tokio::time::Instant::now(), started, "no timer fired");
}

/// The delivery state of the queue `arn` in `store`.
fn delivery_of(store: &KinesisStore, arn: &str) -> model::Delivery {
    let queues = store.dependents().queues();
    queues
        .iter()
        .find(|q| q.arn == arn)
        .unwrap()
        .delivery
        .clone()
}

/// Receives up to `limit` records of the queue `arn`; their receipt handles.
async fn receive_handles(store: &KinesisStore, arn: &str, limit: i64) -> Vec<String> {
    let input = serde_json::from_value(serde_json::json!({
        "QueueARN": arn, "Limit": limit, "WaitTimeSeconds": 1,
    }))
    .unwrap();
    let got = receive(store, input).await.unwrap();
    got.queue_records
        .into_iter()
        .map(|r| r.receipt_handle)
        .collect()
}

fn batch_input(arn: &str, handles: &[String], visibility: Option<i64>) -> BatchInput {
    let entries: Vec<_> = handles
        .iter()
        .map(|h| serde_json::json!({"ReceiptHandle": h, "VisibilityTimeoutSeconds": visibility}))
        .collect();
    serde_json::from_value(serde_json::json!({"QueueARN": arn, "Entries": entries})).unwrap()
}

/// Receives and batch operations are journaled as what they changed, over the snapshot the
/// journal continues; recovery applies them in order, and a torn last record is cut off
/// without losing the ones before it.
#[tokio::test]
async fn a_durable_queue_recovers_from_delivery_changes_over_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (store, arn) = {
        let mut config = Config::embedded();
        config.create_delay = Duration::ZERO;
        config.data_dir = Some(dir.path().to_owned());
        store_with_queue_in(config).await
    };
    let stream = store.stream("waits").unwrap();
    let records = (0..40)
        .map(|i| NewRecord {
            partition_key: Arc::from("key"),
            data: bytes::Bytes::from(format!("record {i}")),
            hash: crate::kinesis::model::keys::partition_key_hash("key"),
        })
        .collect();
    store.append(&stream, records).await.unwrap();
    let first = receive_handles(&store, &arn, 10).await;
    let acked = acknowledge(&store, batch_input(&arn, &first[..4], None)).await;
    assert_eq!(acked.unwrap().successful.len(), 4);
    store.compact_metadata().unwrap();

    let second = receive_handles(&store, &arn, 10).await;
    let acked = acknowledge(&store, batch_input(&arn, &second[..3], None)).await;
    assert_eq!(acked.unwrap().successful.len(), 3);
    let changed = change_visibility(&store, batch_input(&arn, &first[4..6], Some(0))).await;
    assert_eq!(changed.unwrap().successful.len(), 2);
    let again = receive_handles(&store, &arn, 10).await;
    assert!(!again.is_empty());
    // Waited for: it covers the receive before it, which was not.
    let acked = acknowledge(&store, batch_input(&arn, &again[..1], None)).await;
    assert_eq!(acked.unwrap().successful.len(), 1);
    let live = delivery_of(&store, &arn);
    drop((store, stream));

    let journal = std::fs::read_dir(dir.path().join("kinesis"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("meta-journal-"))
        .unwrap();
    let written = std::fs::read(&journal).unwrap();
    let text = String::from_utf8_lossy(&written);
    assert!(text.contains("\"QueueDelivery\""), "{text}");
    assert!(
        !text.contains("\"Queue\""),
        "no whole queue after the snapshot: {text}"
    );
    let reopen = || {
        let mut config = Config::embedded();
        config.data_dir = Some(dir.path().to_owned());
        KinesisStore::open(&config).unwrap()
    };
    assert_eq!(delivery_of(&reopen(), &arn), live);

    // A crash in the middle of an append: a copy of the first record, one byte short, over
    // the zeros laid down past the last one.
    let frame_ends: Vec<usize> = crate::durable::frame::frames(&written, 1..=usize::MAX)
        .map(|frame| frame.end)
        .collect();
    let (first_end, valid) = (frame_ends[0], *frame_ends.last().unwrap());
    let mut torn = written.clone();
    torn.resize(torn.len().max(valid + first_end), 0);
    torn[valid..valid + first_end - 1].copy_from_slice(&written[..first_end - 1]);
    std::fs::write(&journal, &torn).unwrap();
    assert_eq!(delivery_of(&reopen(), &arn), live);
    let mut zeroed = written[..valid].to_vec();
    zeroed.resize(torn.len(), 0);
    assert_eq!(std::fs::read(&journal).unwrap(), zeroed);
}
