//! A durable emulator killed with SIGKILL while receivers drain a queue never redelivers a
//! record whose acknowledgement it answered, and still delivers every record whose
//! acknowledgement was not answered.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::{collect, json, spawn_emulator};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const RECORDS: usize = 1500;

/// One keep-alive connection to a spawned emulator.
struct Connection(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Connection {
    async fn open(endpoint: &str) -> Connection {
        let address = endpoint.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Connection(sender)
    }

    /// The answer to `operation`, or `None` when the call did not complete (the server died).
    async fn call(&mut self, operation: &str, body: Value) -> Option<Value> {
        let request = json(&format!("Kinesis_20131202.{operation}"), body);
        self.0.ready().await.ok()?;
        let reply = collect(self.0.send_request(request).await.ok()?).await;
        assert!(reply.status.is_success(), "{operation}: {:?}", reply.body);
        Some(reply.json())
    }
}

/// The partition key of each record received, with the receipt handles to acknowledge.
fn keys_and_handles(received: &Value) -> Vec<(String, Value)> {
    received["QueueRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = r["PartitionKey"].as_str().unwrap().to_owned();
            (key, json!({"ReceiptHandle": r["ReceiptHandle"]}))
        })
        .collect()
}

/// The keys of records whose acknowledgement was answered, and of records whose
/// acknowledgement was sent but not answered (it may or may not have happened).
#[derive(Debug, Default)]
struct Settled {
    acked: BTreeSet<String>,
    unanswered: BTreeSet<String>,
}

/// Receives and acknowledges until the connection fails, noting what was settled.
async fn drain_until_killed(endpoint: String, queue: String, settled: Arc<Mutex<Settled>>) {
    let mut kinesis = Connection::open(&endpoint).await;
    loop {
        let body = json!({"QueueARN": queue, "Limit": 10, "WaitTimeSeconds": 1});
        let Some(received) = kinesis.call("ReceiveQueueRecords", body).await else {
            return;
        };
        let records = keys_and_handles(&received);
        if records.is_empty() {
            continue;
        }
        let entries: Vec<Value> = records.iter().map(|(_, h)| h.clone()).collect();
        let body = json!({"QueueARN": queue, "Entries": entries});
        let Some(answer) = kinesis.call("AcknowledgeQueueRecords", body).await else {
            let mut settled = settled.lock().unwrap();
            settled
                .unanswered
                .extend(records.into_iter().map(|(key, _)| key));
            return;
        };
        let succeeded: BTreeSet<&str> = answer["Successful"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ReceiptHandle"].as_str().unwrap())
            .collect();
        let mut settled = settled.lock().unwrap();
        for (key, handle) in &records {
            if succeeded.contains(handle["ReceiptHandle"].as_str().unwrap()) {
                settled.acked.insert(key.clone());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_queue_records_are_not_redelivered_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut emulator, endpoint) = spawn_emulator(dir.path()).await;
    let mut control = Connection::open(&endpoint).await;
    let stream_mode = json!({"StreamMode": "ON_DEMAND"});
    let create = json!({"StreamName": "drained", "StreamModeDetails": stream_mode});
    control.call("CreateStream", create).await.unwrap();
    let stream_arn = loop {
        let describe = json!({"StreamName": "drained"});
        let summary = control
            .call("DescribeStreamSummary", describe)
            .await
            .unwrap();
        let summary = &summary["StreamDescriptionSummary"];
        if summary["StreamStatus"] == "ACTIVE" {
            break summary["StreamARN"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let all: BTreeSet<String> = (0..RECORDS).map(|i| format!("record-{i:05}")).collect();
    let keys: Vec<&String> = all.iter().collect();
    for chunk in keys.chunks(500) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|key| {
                let data = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
                json!({"Data": data, "PartitionKey": key})
            })
            .collect();
        let put = json!({"StreamName": "drained", "Records": entries});
        let out = control.call("PutRecords", put).await.unwrap();
        assert_eq!(out["FailedRecordCount"], 0);
    }
    // A short visibility timeout, so records in flight at the kill are delivered again soon
    // after the restart.
    let created = control
        .call(
            "CreateQueue",
            json!({
                "QueueName": "drained-queue",
                "StreamConfigurationList": [
                    {"StreamARN": stream_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}
                ],
                "QueueAttributes": {"VisibilityTimeoutSeconds": 2},
            }),
        )
        .await
        .unwrap();
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_owned();
    loop {
        let described = control
            .call("DescribeQueue", json!({"QueueARN": queue}))
            .await
            .unwrap();
        if described["QueueDescription"]["QueueStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let settled: Arc<Mutex<Settled>> = Arc::default();
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let run = drain_until_killed(endpoint.clone(), queue.clone(), Arc::clone(&settled));
            tokio::spawn(run)
        })
        .collect();
    // Kill mid-drain, with receives and acknowledgements in flight.
    while settled.lock().unwrap().acked.len() < RECORDS / 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    emulator.start_kill().expect("SIGKILL");
    emulator.wait().await.unwrap();
    for receiver in receivers {
        receiver.await.unwrap();
    }
    let Settled { acked, unanswered } = std::mem::take(&mut *settled.lock().unwrap());
    assert!(
        acked.len() < RECORDS,
        "the kill came before the drain ended"
    );

    let (_restarted, endpoint) = spawn_emulator(dir.path()).await;
    let mut kinesis = Connection::open(&endpoint).await;
    let mut redelivered = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Every record is either settled or delivered again; once that holds, keep receiving past
    // the visibility timeout, so records in flight at the kill have had their chance to show.
    let mut empty_receives = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never drained"
        );
        let body = json!({"QueueARN": queue, "Limit": 10, "WaitTimeSeconds": 1});
        let received = kinesis.call("ReceiveQueueRecords", body).await.unwrap();
        let records = keys_and_handles(&received);
        if records.is_empty() {
            let covered = all
                .iter()
                .all(|k| acked.contains(k) || redelivered.contains(k) || unanswered.contains(k));
            empty_receives += 1;
            if covered && empty_receives >= 3 {
                break;
            }
            continue;
        }
        empty_receives = 0;
        for (key, _) in &records {
            assert!(
                !acked.contains(key),
                "{key} was delivered again after its acknowledgement was answered"
            );
            redelivered.insert(key.clone());
        }
        let entries: Vec<Value> = records.into_iter().map(|(_, h)| h).collect();
        let body = json!({"QueueARN": queue, "Entries": entries});
        kinesis.call("AcknowledgeQueueRecords", body).await.unwrap();
    }
}
