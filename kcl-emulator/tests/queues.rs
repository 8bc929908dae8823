//! Queues over real HTTP: delivery to concurrent receivers, long polls, the limits queues share
//! with consumers, CBOR, and delivery state that survives a restart of a durable emulator.
//! (aws-sdk-kinesis has no queue operations yet; boto3 drives them in the compatibility tests.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use ciborium::Value as Cbor;
use common::{call, cbor, cbor_get, cbor_map, ok, send_http1, wait_until_active};
use http::StatusCode;
use kcl_emulator::{Config, EmbeddedEmulator};
use serde_json::{json, Value};

async fn on_demand_stream(emulator: &EmbeddedEmulator, name: &str) -> String {
    ok(
        emulator,
        "CreateStream",
        json!({"StreamName": name, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    )
    .await;
    wait_until_active(emulator, name).await;
    ok(
        emulator,
        "DescribeStreamSummary",
        json!({"StreamName": name}),
    )
    .await["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn active_queue(emulator: &EmbeddedEmulator, body: Value) -> String {
    let created = ok(emulator, "CreateQueue", body).await;
    let arn = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..500 {
        let described = ok(emulator, "DescribeQueue", json!({"QueueARN": arn})).await;
        if described["QueueDescription"]["QueueStatus"] == "ACTIVE" {
            return arn;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queue {arn} never became ACTIVE");
}

async fn put(emulator: &EmbeddedEmulator, stream: &str, records: impl IntoIterator<Item = String>) {
    let entries: Vec<Value> = records
        .into_iter()
        .map(|data| {
            use base64::Engine as _;
            json!({
                "Data": base64::engine::general_purpose::STANDARD.encode(&data),
                "PartitionKey": data,
            })
        })
        .collect();
    let out = ok(
        emulator,
        "PutRecords",
        json!({"StreamName": stream, "Records": entries}),
    )
    .await;
    assert_eq!(out["FailedRecordCount"], 0);
}

async fn receive(emulator: &EmbeddedEmulator, queue: &str, wait_secs: u64) -> Vec<Value> {
    ok(
        emulator,
        "ReceiveQueueRecords",
        json!({"QueueARN": queue, "WaitTimeSeconds": wait_secs}),
    )
    .await["QueueRecords"]
        .as_array()
        .unwrap()
        .clone()
}

fn handles(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
        .collect()
}

fn keys(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["PartitionKey"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn concurrent_receivers_share_the_records_each_delivered_once() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let stream = on_demand_stream(&emulator, "shared").await;
    let queue = active_queue(
        &emulator,
        json!({"QueueName": "workers", "StreamConfigurationList": [{"StreamARN": stream}]}),
    )
    .await;
    put(&emulator, "shared", (0..200).map(|i| format!("r{i:03}"))).await;

    let emulator = std::sync::Arc::new(emulator);
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let emulator = std::sync::Arc::clone(&emulator);
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = receive(&emulator, &queue, 1).await;
                    if batch.is_empty() {
                        return got;
                    }
                    let acked = ok(
                        &emulator,
                        "AcknowledgeQueueRecords",
                        json!({"QueueARN": queue, "Entries": handles(&batch)}),
                    )
                    .await;
                    assert_eq!(acked["Failed"], json!([]));
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for receiver in receivers {
        all.extend(receiver.await.unwrap());
    }
    assert_eq!(all.len(), 200, "every record once, none twice");
    let expected: BTreeSet<String> = (0..200).map(|i| format!("r{i:03}")).collect();
    assert_eq!(keys(&all), expected);
    assert!(all.iter().all(|r| r["ReceiveCount"] == 1));
}

#[tokio::test]
async fn a_long_poll_returns_a_record_written_while_it_waits() {
    let emulator = std::sync::Arc::new(EmbeddedEmulator::start(Config::embedded()).await.unwrap());
    let stream = on_demand_stream(&emulator, "quiet").await;
    let queue = active_queue(
        &emulator,
        json!({"QueueName": "poller", "StreamConfigurationList": [{"StreamARN": stream}]}),
    )
    .await;
    let waiting = {
        let emulator = std::sync::Arc::clone(&emulator);
        let queue = queue.clone();
        tokio::spawn(async move { receive(&emulator, &queue, 20).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(&emulator, "quiet", ["late".to_owned()]).await;
    let got = waiting.await.unwrap();
    assert_eq!(keys(&got), BTreeSet::from(["late".to_owned()]));
}

#[tokio::test]
async fn queues_share_the_consumer_limit_and_hold_on_to_their_stream() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let stream = on_demand_stream(&emulator, "busy").await;
    for i in 0..19 {
        ok(
            &emulator,
            "RegisterStreamConsumer",
            json!({"StreamARN": stream, "ConsumerName": format!("c{i}")}),
        )
        .await;
    }
    active_queue(
        &emulator,
        json!({"QueueName": "twentieth", "StreamConfigurationList": [{"StreamARN": stream}]}),
    )
    .await;
    let summary = ok(
        &emulator,
        "DescribeStreamSummary",
        json!({"StreamName": "busy"}),
    )
    .await;
    assert_eq!(summary["StreamDescriptionSummary"]["ConsumerCount"], 19);
    assert_eq!(summary["StreamDescriptionSummary"]["QueueCount"], 1);
    let over = call(
        &emulator,
        "RegisterStreamConsumer",
        json!({"StreamARN": stream, "ConsumerName": "one-too-many"}),
    )
    .await;
    assert_eq!(over.json()["__type"], "LimitExceededException");
    let over = call(
        &emulator,
        "CreateQueue",
        json!({"QueueName": "one-too-many", "StreamConfigurationList": [{"StreamARN": stream}]}),
    )
    .await;
    assert_eq!(over.json()["__type"], "LimitExceededException");

    // The stream keeps its mode and its life while a queue reads it.
    let mode = call(
        &emulator,
        "UpdateStreamMode",
        json!({"StreamARN": stream, "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
    )
    .await;
    assert_eq!(mode.json()["__type"], "ResourceInUseException");
    let delete = call(
        &emulator,
        "DeleteStream",
        json!({"StreamName": "busy", "EnforceConsumerDeletion": true}),
    )
    .await;
    assert_eq!(delete.status, StatusCode::BAD_REQUEST);
    assert_eq!(delete.json()["__type"], "ResourceInUseException");
}

#[tokio::test]
async fn queue_records_over_cbor_carry_bytes_and_millisecond_timestamps() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let stream = on_demand_stream(&emulator, "binary").await;
    let queue = active_queue(
        &emulator,
        json!({
            "QueueName": "cbor",
            "StreamConfigurationList": [{"StreamARN": stream, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        }),
    )
    .await;
    ok(
        &emulator,
        "PutRecord",
        json!({"StreamName": "binary", "PartitionKey": "k", "Data": "AAH/"}),
    )
    .await;
    let reply = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.ReceiveQueueRecords",
            cbor_map(vec![
                ("QueueARN", Cbor::Text(queue)),
                ("WaitTimeSeconds", Cbor::Integer(1.into())),
            ]),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply: Cbor = ciborium::from_reader(&reply.body[..]).unwrap();
    let record = &cbor_get(&reply, "QueueRecords").as_array().unwrap()[0];
    assert_eq!(cbor_get(record, "Data"), &Cbor::Bytes(vec![0, 1, 255]));
    for member in ["ApproximateArrivalTimestamp", "FirstReceiveTimestamp"] {
        let Cbor::Tag(1, millis) = cbor_get(record, member) else {
            panic!("{member} is tag 1: {record:?}");
        };
        assert!(i128::from(millis.as_integer().unwrap()) > 1_600_000_000_000);
    }
}

#[tokio::test]
async fn delivery_state_survives_a_restart_of_a_durable_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::embedded();
        c.data_dir = Some(dir.path().to_owned());
        c
    };
    let emulator = EmbeddedEmulator::start(config()).await.unwrap();
    let stream = on_demand_stream(&emulator, "kept").await;
    let queue = active_queue(
        &emulator,
        json!({
            "QueueName": "kept",
            "StreamConfigurationList": [{"StreamARN": stream}],
            "QueueAttributes": {"VisibilityTimeoutSeconds": 600},
        }),
    )
    .await;
    put(&emulator, "kept", (0..6).map(|i| format!("k{i}"))).await;
    let got = receive(&emulator, &queue, 1).await;
    assert_eq!(got.len(), 6);
    // Two acknowledged, two handed back, two left in flight for ten minutes.
    ok(
        &emulator,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": queue, "Entries": handles(&got[..2])}),
    )
    .await;
    let released: Vec<Value> = got[2..4]
        .iter()
        .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}))
        .collect();
    ok(
        &emulator,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": released}),
    )
    .await;
    emulator.shutdown().await;

    let emulator = EmbeddedEmulator::start(config()).await.unwrap();
    let again = receive(&emulator, &queue, 1).await;
    assert_eq!(
        keys(&again),
        keys(&got[2..4]),
        "only the released records come back"
    );
    assert!(again.iter().all(|r| r["ReceiveCount"] == 2));
    assert!(receive(&emulator, &queue, 1).await.is_empty());
    // Handles issued before the restart still work.
    let acked = ok(
        &emulator,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": queue, "Entries": handles(&got[4..])}),
    )
    .await;
    assert_eq!(acked["Failed"], json!([]));
    // And new records keep flowing.
    put(&emulator, "kept", ["after".to_owned()]).await;
    assert_eq!(
        keys(&receive(&emulator, &queue, 1).await),
        BTreeSet::from(["after".to_owned()])
    );
}

#[tokio::test]
async fn records_of_shards_created_by_a_split_are_delivered_too() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let stream = on_demand_stream(&emulator, "resharded").await;
    let queue = active_queue(
        &emulator,
        json!({"QueueName": "across-splits", "StreamConfigurationList": [{"StreamARN": stream}]}),
    )
    .await;
    put(
        &emulator,
        "resharded",
        (0..20).map(|i| format!("before-{i}")),
    )
    .await;
    let shards = ok(&emulator, "ListShards", json!({"StreamName": "resharded"})).await;
    let shard = &shards["Shards"][0];
    let start: u128 = shard["HashKeyRange"]["StartingHashKey"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u128 = shard["HashKeyRange"]["EndingHashKey"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    ok(
        &emulator,
        "SplitShard",
        json!({
            "StreamName": "resharded",
            "ShardToSplit": shard["ShardId"],
            "NewStartingHashKey": (start + (end - start) / 2).to_string(),
        }),
    )
    .await;
    wait_until_active(&emulator, "resharded").await;
    put(
        &emulator,
        "resharded",
        (0..20).map(|i| format!("after-{i}")),
    )
    .await;

    let mut got = Vec::new();
    loop {
        let batch = receive(&emulator, &queue, 1).await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), 40, "every record once, parents' and children's");
    let expected: BTreeSet<String> = (0..20)
        .flat_map(|i| [format!("before-{i}"), format!("after-{i}")])
        .collect();
    assert_eq!(keys(&got), expected);
}
