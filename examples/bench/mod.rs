//! The emulator benchmark suite shared by `bench_emulator` and `bench_compare`: the same
//! workloads, run against any Kinesis-compatible endpoint, printed as one table.
// Each example compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

pub mod fleet;
pub mod kcl;
pub mod metadata;
pub mod queues;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};

/// Workload sizes.
#[derive(Debug, Clone)]
pub struct Workload {
    /// How long each ingest run lasts, in seconds.
    pub seconds: f64,
    /// Shards in the benchmark stream.
    pub shards: i32,
    /// Bytes per record.
    pub record_size: usize,
    /// Records per PutRecords call.
    pub batch: usize,
    /// Samples for the latency row.
    pub latency_samples: usize,
}

/// A Kinesis client for `endpoint` with static credentials.
pub fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "static"))
            .endpoint_url(endpoint)
            .build(),
    )
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// See the table header.
    pub workload: String,
    /// See the table header.
    pub target: String,
    /// See the table header.
    pub records_per_sec: Option<f64>,
    /// See the table header.
    pub mb_per_sec: Option<f64>,
    /// See the table header.
    pub p50_ms: Option<f64>,
    /// See the table header.
    pub p99_ms: Option<f64>,
    /// A figure of another kind (a time, a size, a rate per lease), with its unit.
    pub note: Option<String>,
}

pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

/// A name no earlier run in this process has used.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos}")
}

/// Creates a stream and waits until it is ACTIVE.
pub async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> anyhow::Result<()> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await?;
    wait_active(client, name).await?;
    Ok(())
}

/// Deletes the stream `name` and waits until it is gone, so that its shards no longer count
/// towards the server's shard limit.
pub async fn delete_stream(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<()> {
    client.delete_stream().stream_name(name).send().await?;
    for _ in 0..6000 {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(());
            }
            Err(err) => return Err(err.into()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    anyhow::bail!("stream {name} was never deleted")
}

/// Waits until the stream `name` is ACTIVE and returns its ARN.
pub async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<String> {
    for _ in 0..6000 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await?;
        let summary = summary.stream_description_summary().context("summary")?;
        if summary.stream_status() == &StreamStatus::Active {
            return Ok(summary.stream_arn().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("stream {name} never became ACTIVE")
}

/// Concurrent PutRecords for `seconds` over `connections` clients.
pub async fn ingest(
    endpoint: &str,
    stream: &str,
    connections: usize,
    args: &Workload,
    seconds: f64,
) -> anyhow::Result<(Row, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let payload = Blob::new(vec![b'x'; args.record_size]);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for connection in 0..connections {
        let client = client(endpoint);
        let (stop, records, payload) = (Arc::clone(&stop), Arc::clone(&records), payload.clone());
        let (stream, batch) = (stream.to_owned(), args.batch);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let entries = (0..batch)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("{connection}-{n}-{i}"))
                            .data(payload.clone())
                            .build()
                            .expect("required fields set")
                    })
                    .collect();
                n += 1;
                let sent = Instant::now();
                let out = client
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(entries))
                    .send()
                    .await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                let ok = out.records().len() as u64 - out.failed_record_count().unwrap_or(0) as u64;
                records.fetch_add(ok, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let total = records.load(Ordering::Relaxed);
    let workload = format!(
        "PutRecords {}x{} B, {connections} conn",
        args.batch, args.record_size
    );
    let row = throughput_row(workload, total, started, args, latencies);
    Ok((row, total))
}

/// The row of a run begun at `started` that moved `records` records, with the latency of
/// each request.
fn throughput_row(
    workload: String,
    records: u64,
    started: Instant,
    args: &Workload,
    mut latencies: Vec<f64>,
) -> Row {
    let rate = records as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Row {
        workload,
        target: String::new(),
        records_per_sec: Some(rate),
        mb_per_sec: Some(rate * args.record_size as f64 / 1e6),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        note: None,
    }
}

/// One keep-alive HTTP/1.1 connection of the minimal raw clients: no SDK and no signing, so
/// that a row measures the server and not the client.
pub struct RawConnection {
    endpoint: String,
    authority: String,
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

impl RawConnection {
    /// Connects to `endpoint` (`http://host:port`).
    pub async fn connect(endpoint: &str) -> anyhow::Result<RawConnection> {
        let authority = endpoint.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(RawConnection {
            endpoint: endpoint.to_owned(),
            authority,
            sender,
        })
    }

    /// POSTs `body` as the AWS JSON protocol call `target` (`x-amz-target`, e.g.
    /// `Kinesis_20131202.PutRecords`) in `content_type`; the answer's body, or an error naming
    /// the call when its status is not a success.
    pub async fn post(
        &mut self,
        target: &str,
        content_type: &str,
        body: bytes::Bytes,
    ) -> anyhow::Result<bytes::Bytes> {
        use http_body_util::{BodyExt, Full};
        let request = hyper::Request::post("/")
            .header("host", self.authority.as_str())
            .header("x-amz-target", target)
            .header("content-type", content_type)
            // Well formed but not computed: the local servers measured here check that a
            // signature is present (ferrokinesis refuses a call without one), not its value.
            .header("x-amz-date", "20261130T000000Z")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=bench/20261130/us-east-1/kinesis/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=0",
            )
            .body(Full::new(body))?;
        // The connection takes the next request only once it has finished with the previous
        // response; sending before that fails with "connection was not ready". A server that
        // closes connections after each answer (moto's) gets a new one.
        if self.sender.ready().await.is_err() {
            *self = RawConnection::connect(&self.endpoint).await?;
            self.sender.ready().await?;
        }
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "{target} failed: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(answer)
    }
}

/// PutRecords for `seconds` from a minimal client on one connection: raw HTTP/1.1, no
/// signing, the JSON body of `args.batch` records written by hand around a payload encoded
/// once. What the server sustains when the SDK client, whose share of each request is as
/// large as the server's, is not the limit.
pub async fn ingest_raw(
    endpoint: &str,
    stream: &str,
    args: &Workload,
    seconds: f64,
) -> anyhow::Result<Row> {
    use base64::Engine as _;
    use std::fmt::Write as _;
    let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; args.record_size]);
    let mut connection = RawConnection::connect(endpoint).await?;
    let mut latencies = Vec::new();
    let mut stored = 0u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut request_number = 0u64;
    while Instant::now() < deadline {
        // Fresh partition keys in every request, as the SDK rows have; the body is written by
        // hand, which costs the client a few microseconds.
        let mut body = format!(r#"{{"StreamName":"{stream}","Records":["#);
        for i in 0..args.batch {
            let comma = if i == 0 { "" } else { "," };
            write!(
                body,
                r#"{comma}{{"Data":"{data}","PartitionKey":"{request_number}-{i}"}}"#
            )?;
        }
        body.push_str("]}");
        request_number += 1;
        let sent = Instant::now();
        let answer = connection
            .post(
                "Kinesis_20131202.PutRecords",
                "application/x-amz-json-1.1",
                bytes::Bytes::from(body),
            )
            .await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        stored += args.batch as u64 - failed_record_count(&answer)?;
    }
    let workload = format!(
        "PutRecords {}x{} B, 1 conn, minimal raw HTTP client",
        args.batch, args.record_size
    );
    Ok(throughput_row(workload, stored, started, args, latencies))
}

/// The `FailedRecordCount` of a PutRecords answer, read without parsing its 500 entries.
fn failed_record_count(answer: &[u8]) -> anyhow::Result<u64> {
    let text = std::str::from_utf8(answer)?;
    let field = "\"FailedRecordCount\":";
    let at = text
        .find(field)
        .ok_or_else(|| anyhow::anyhow!("no FailedRecordCount in {text:.200}"))?;
    let digits: String = text[at + field.len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Ok(digits.parse()?)
}

/// Reads every shard of `stream` from TRIM_HORIZON to the tip, shards in parallel.
pub async fn drain(endpoint: &str, stream: &str, args: &Workload) -> anyhow::Result<Row> {
    let client = client(endpoint);
    let shards = client.list_shards().stream_name(stream).send().await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for shard in shards.shards() {
        let client = client.clone();
        let (stream, shard_id) = (stream.to_owned(), shard.shard_id().to_owned());
        tasks.push(tokio::spawn(async move {
            let mut iterator = client
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?
                .shard_iterator
                .context("iterator")?;
            let mut latencies = Vec::new();
            let mut read = 0u64;
            loop {
                let sent = Instant::now();
                let out = client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(10_000)
                    .send()
                    .await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                read += out.records().len() as u64;
                if out.records().is_empty()
                    || out.millis_behind_latest() == Some(0) && out.records().len() < 10_000
                {
                    break;
                }
                iterator = out.next_shard_iterator.context("open shard")?;
            }
            anyhow::Ok((read, latencies))
        }));
    }
    let mut total = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (read, l) = task.await??;
        total += read;
        latencies.extend(l);
    }
    let workload = format!("GetRecords drain ({total} records, limit 10000)");
    Ok(throughput_row(workload, total, started, args, latencies))
}

/// Single-record puts at a steady pace while a reader polls GetRecords with no idle time; the
/// latency is from just before PutRecord to the moment GetRecords returns the record.
pub async fn put_to_get_latency(
    endpoint: &str,
    stream: &str,
    samples: usize,
) -> anyhow::Result<Row> {
    let client = client(endpoint);
    create_stream(&client, stream, 1).await?;
    let reader = client.clone();
    let stream_name = stream.to_owned();
    let reading = tokio::spawn(async move {
        let mut iterator = reader
            .get_shard_iterator()
            .stream_name(&stream_name)
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await?
            .shard_iterator
            .context("iterator")?;
        let mut latencies = Vec::new();
        while latencies.len() < samples {
            let out = reader
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1000.0;
            for record in out.records() {
                let sent: f64 = std::str::from_utf8(record.data().as_ref())?.parse()?;
                latencies.push(now - sent);
            }
            iterator = out.next_shard_iterator.context("open shard")?;
        }
        anyhow::Ok(latencies)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..samples {
        let sent = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1000.0;
        client
            .put_record()
            .stream_name(stream)
            .partition_key("latency")
            .data(Blob::new(format!("{sent:.3}")))
            .send()
            .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), reading).await???;
    latencies.sort_by(f64::total_cmp);
    Ok(Row {
        workload: format!("put -> GetRecords latency ({samples} records, no idle)"),
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        note: None,
    })
}

/// Runs every workload against `endpoint`, labelling the rows with `label`.
pub async fn run_suite(
    endpoint: &str,
    label: &str,
    args: &Workload,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let seconds = args.seconds;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    for connections in [1, 4] {
        let stream = format!("bench-{run}-{connections}");
        create_stream(&client(endpoint), &stream, args.shards).await?;
        let (mut row, _) = ingest(endpoint, &stream, connections, args, seconds).await?;
        row.target = label.to_owned();
        rows.push(row);
        if connections == 1 {
            // On a new stream: a server may slow as a stream grows, and the row should not
            // pay for the records of the one before it. The old stream goes first, as its
            // shards would count towards a peer's shard limit (ferrokinesis allows 10).
            delete_stream(&client(endpoint), &stream).await?;
            let raw_stream = format!("bench-{run}-raw");
            create_stream(&client(endpoint), &raw_stream, args.shards).await?;
            let mut row = ingest_raw(endpoint, &raw_stream, args, seconds).await?;
            row.target = label.to_owned();
            rows.push(row);
            delete_stream(&client(endpoint), &raw_stream).await?;
        }
        if connections == 4 {
            let mut row = drain(endpoint, &stream, args).await?;
            row.target = label.to_owned();
            rows.push(row);
        }
    }
    let mut row = put_to_get_latency(
        endpoint,
        &format!("bench-{run}-latency"),
        args.latency_samples,
    )
    .await?;
    row.target = label.to_owned();
    rows.push(row);
    Ok(())
}

/// Serves a fixed PutRecords success body for every request, after reading the request body
/// in full (so the client pays for sending it). Returns the endpoint URL.
pub async fn canned_server(batch: usize) -> anyhow::Result<String> {
    let entry = r#"{"SequenceNumber":"49000000000000000000000000000000000000000000000000000001","ShardId":"shardId-000000000000"}"#;
    let body = bytes::Bytes::from(format!(
        r#"{{"FailedRecordCount":0,"Records":[{}]}}"#,
        vec![entry; batch].join(",")
    ));
    canned_server_with(body, "application/x-amz-json-1.1").await
}

/// Serves `body` as the answer to every request, after reading the request in full.
pub async fn canned_server_with(
    body: bytes::Bytes,
    content_type: &'static str,
) -> anyhow::Result<String> {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            let mut response = hyper::Response::new(Full::new(body));
                            response.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static(content_type),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(endpoint)
}

/// The machine the figures come from: cores and CPU model.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// Formats an optional figure, `-` when absent.
pub fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Prints `rows` as a Markdown table headed by the machine and date.
pub fn print_table(title: &str, rows: &[Row]) {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("\n{title} — {} — {date}\n", machine());
    println!("| target | workload | records/s | MB/s | p50 ms | p99 ms | other |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.target,
            row.workload,
            fmt(row.records_per_sec, 0),
            fmt(row.mb_per_sec, 1),
            fmt(row.p50_ms, 2),
            fmt(row.p99_ms, 2),
            row.note.as_deref().unwrap_or("-")
        );
    }
}
