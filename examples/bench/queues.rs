//! The queue rows: how fast concurrent receivers drain a backlog through a Kinesis queue,
//! each round trip a ReceiveQueueRecords (up to 10 records) and an AcknowledgeQueueRecords.
//! aws-sdk-kinesis has no queue operations yet, so the calls go out as raw JSON over HTTP/1.1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamMode, StreamModeDetails};
use serde_json::{json, Value};

use super::{percentile, RawConnection, Row};

/// One keep-alive connection speaking the Kinesis JSON protocol.
struct RawKinesis(RawConnection);

impl RawKinesis {
    async fn connect(endpoint: &str) -> anyhow::Result<RawKinesis> {
        Ok(RawKinesis(RawConnection::connect(endpoint).await?))
    }

    async fn call(&mut self, operation: &str, body: &Value) -> anyhow::Result<Value> {
        let answer = self
            .0
            .post(
                &format!("Kinesis_20131202.{operation}"),
                "application/x-amz-json-1.1",
                bytes::Bytes::from(serde_json::to_vec(body)?),
            )
            .await?;
        Ok(serde_json::from_slice(&answer)?)
    }
}

/// Puts `records` records of 100 bytes on a new on-demand stream, creates a TRIM_HORIZON queue
/// on it, and drains the queue with `receivers` concurrent receivers, acknowledging every
/// batch. Records/s counts acknowledged records; the latencies are per receive + acknowledge.
pub async fn drain(
    endpoint: &str,
    target: &str,
    receivers: usize,
    records: usize,
) -> anyhow::Result<Row> {
    let client = super::client(endpoint);
    let stream = super::unique("bench-queue");
    client
        .create_stream()
        .stream_name(&stream)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()?,
        )
        .send()
        .await?;
    let stream_arn = super::wait_active(&client, &stream).await?;
    let payload = Blob::new(vec![b'q'; 100]);
    for chunk in (0..records).collect::<Vec<_>>().chunks(500) {
        let entries = chunk
            .iter()
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .data(payload.clone())
                    .partition_key(format!("key-{i}"))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
            .await?;
        anyhow::ensure!(out.failed_record_count() == Some(0), "puts were refused");
    }

    let mut control = RawKinesis::connect(endpoint).await?;
    let created = control
        .call(
            "CreateQueue",
            &json!({
                "QueueName": format!("{stream}-queue"),
                "StreamConfigurationList": [
                    {"StreamARN": stream_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}
                ],
            }),
        )
        .await?;
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .context("queue ARN")?
        .to_owned();
    loop {
        let described = control
            .call("DescribeQueue", &json!({"QueueARN": queue}))
            .await?;
        if described["QueueDescription"]["QueueStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let acknowledged = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // When the last record was acknowledged: receivers still in a long poll then are idle
    // time, not work.
    let finished: Arc<OnceLock<Duration>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..receivers {
        let (endpoint, queue, acknowledged, finished) = (
            endpoint.to_owned(),
            queue.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&finished),
        );
        tasks.spawn(async move {
            let mut kinesis = RawKinesis::connect(&endpoint).await?;
            let mut latencies = Vec::new();
            while acknowledged.load(Ordering::Relaxed) < records as u64 {
                let round = Instant::now();
                let received = kinesis
                    .call(
                        "ReceiveQueueRecords",
                        &json!({"QueueARN": queue, "Limit": 10, "WaitTimeSeconds": 1}),
                    )
                    .await?;
                let handles: Vec<Value> = received["QueueRecords"]
                    .as_array()
                    .context("records")?
                    .iter()
                    .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
                    .collect();
                if handles.is_empty() {
                    continue;
                }
                let acked = kinesis
                    .call(
                        "AcknowledgeQueueRecords",
                        &json!({"QueueARN": queue, "Entries": handles}),
                    )
                    .await?;
                let done = acked["Successful"].as_array().map_or(0, Vec::len);
                let total = acknowledged.fetch_add(done as u64, Ordering::Relaxed) + done as u64;
                if total >= records as u64 {
                    finished.get_or_init(|| started.elapsed());
                }
                latencies.push(round.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result??);
    }
    let elapsed = finished
        .get()
        .copied()
        .unwrap_or_else(|| started.elapsed())
        .as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    control
        .call("DeleteQueue", &json!({"QueueARN": queue}))
        .await?;
    let done = acknowledged.load(Ordering::Relaxed) as f64;
    Ok(Row {
        workload: format!(
            "Queue drain: receive 10 + acknowledge, {receivers} receivers, {records} records"
        ),
        target: target.to_owned(),
        records_per_sec: Some(done / elapsed),
        mb_per_sec: Some(done * 100.0 / elapsed / 1e6),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        note: None,
    })
}
