//! An emulator process killed with SIGKILL in the middle of a stream of PutRecords loses
//! nothing it acknowledged: after a restart on the same data directory every acknowledged
//! record is readable, in order, exactly once.

mod common;

use std::collections::{BTreeMap, HashSet};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::spawn_emulator;
use tokio::process::Command;

fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut emulator, endpoint) = spawn_emulator(dir.path()).await;
    let kinesis = client(&endpoint);
    kinesis
        .create_stream()
        .stream_name("crash")
        .shard_count(3)
        .send()
        .await
        .unwrap();
    kcl_wait_active(&kinesis).await;

    // Writers record (shard, sequence number, payload) for every acknowledged record.
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let kinesis = kinesis.clone();
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            for batch in 0.. {
                let payloads: Vec<String> = (0..50)
                    .map(|i| format!("w{writer}-b{batch}-r{i}"))
                    .collect();
                let entries = payloads
                    .iter()
                    .map(|p| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(p)
                            .data(Blob::new(p.as_bytes()))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let Ok(out) = kinesis
                    .put_records()
                    .stream_name("crash")
                    .set_records(Some(entries))
                    .send()
                    .await
                else {
                    return; // the emulator died mid-request: nothing here was acknowledged
                };
                let mut acked = acked.lock().unwrap();
                for (record, payload) in out.records().iter().zip(payloads) {
                    if let (Some(shard), Some(seq)) = (record.shard_id(), record.sequence_number())
                    {
                        acked.push((shard.to_owned(), seq.to_owned(), payload));
                    }
                }
            }
        }));
    }
    // Kill once a good number of records is acknowledged, while writes are still in flight.
    loop {
        if acked.lock().unwrap().len() >= 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emulator.start_kill().expect("SIGKILL");
    emulator.wait().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let (_restarted, endpoint) = spawn_emulator(dir.path()).await;
    let kinesis = client(&endpoint);
    let mut by_shard: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (shard, seq, payload) in &acked {
        by_shard
            .entry(shard.clone())
            .or_default()
            .push((seq.clone(), payload.clone()));
    }
    let mut recovered_total = 0;
    for (shard, mut expected) in by_shard {
        expected.sort();
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name("crash")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let mut read: Vec<(String, String)> = Vec::new();
        loop {
            let out = kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            read.extend(out.records().iter().map(|r| {
                (
                    r.sequence_number().to_owned(),
                    String::from_utf8(r.data().as_ref().to_vec()).unwrap(),
                )
            }));
            iterator = out.next_shard_iterator.unwrap();
        }
        let unique: HashSet<_> = read.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(unique.len(), read.len(), "{shard}: no record is duplicated");
        assert!(
            read.windows(2).all(|w| w[0].0 < w[1].0),
            "{shard}: records come back in sequence order"
        );
        let read_set: HashSet<_> = read.iter().cloned().collect();
        for record in &expected {
            assert!(
                read_set.contains(record),
                "{shard}: acknowledged {record:?} was lost"
            );
        }
        recovered_total += read.len();
    }
    assert!(recovered_total >= acked.len());
    // New writes after recovery continue above every recovered sequence number.
    let after = kinesis
        .put_record()
        .stream_name("crash")
        .partition_key("after")
        .data(Blob::new("after"))
        .send()
        .await
        .unwrap();
    let max_acked = acked
        .iter()
        .filter(|(s, _, _)| s == after.shard_id())
        .map(|(_, q, _)| q.clone())
        .max();
    assert!(max_acked.is_none_or(|m| after.sequence_number() > m.as_str()));
}

async fn kcl_wait_active(kinesis: &aws_sdk_kinesis::Client) {
    for _ in 0..500 {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name("crash")
            .send()
            .await
            .unwrap();
        if summary
            .stream_description_summary()
            .unwrap()
            .stream_status()
            .as_str()
            == "ACTIVE"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stream never became ACTIVE");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_health_check_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut emulator, endpoint) = spawn_emulator(dir.path()).await;
    let port = endpoint.rsplit(':').next().unwrap().to_owned();
    let health = |port: String| async move {
        Command::new(env!("CARGO_BIN_EXE_kcl-emulator"))
            .args(["--port", &port, "health-check"])
            .status()
            .await
            .unwrap()
            .success()
    };
    assert!(
        health(port.clone()).await,
        "health-check passes while serving"
    );
    let pid = emulator.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), emulator.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit status, got {status:?}");
    assert!(!health(port).await, "health-check fails once stopped");
}

fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .endpoint_url(endpoint)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_dynamodb_writes_survive_sigkill() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut emulator, endpoint) = spawn_emulator(dir.path()).await;
    let client = dynamodb(&endpoint);
    client
        .create_table()
        .table_name("leases")
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("leaseKey")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("leaseKey")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name("leases")
        .item("leaseKey", AttributeValue::S("counter".into()))
        .item("leaseCounter", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    let acked_keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..3 {
        let client = client.clone();
        let acked_keys = Arc::clone(&acked_keys);
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{writer}-{i}");
                let put = client
                    .put_item()
                    .table_name("leases")
                    .item("leaseKey", AttributeValue::S(key.clone()))
                    .send()
                    .await;
                if put.is_err() {
                    return;
                }
                acked_keys.lock().unwrap().push(key);
            }
        }));
    }
    // One worker renews a lease over and over: conditional on the counter, as the KCL does.
    let renewer = {
        let client = client.clone();
        let acked_counter = Arc::clone(&acked_counter);
        tokio::spawn(async move {
            for counter in 0u64.. {
                let renewed = client
                    .update_item()
                    .table_name("leases")
                    .key("leaseKey", AttributeValue::S("counter".into()))
                    .condition_expression("leaseCounter = :c")
                    .update_expression("SET leaseCounter = :n")
                    .expression_attribute_values(":c", AttributeValue::N(counter.to_string()))
                    .expression_attribute_values(":n", AttributeValue::N((counter + 1).to_string()))
                    .send()
                    .await;
                if renewed.is_err() {
                    return;
                }
                acked_counter.store(counter + 1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    while acked_keys.lock().unwrap().len() < 600
        || acked_counter.load(std::sync::atomic::Ordering::SeqCst) < 100
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emulator.start_kill().unwrap();
    emulator.wait().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    renewer.await.unwrap();

    let (_restarted, endpoint) = spawn_emulator(dir.path()).await;
    let client = dynamodb(&endpoint);
    let acked_keys = acked_keys.lock().unwrap().clone();
    for key in &acked_keys {
        let item = client
            .get_item()
            .table_name("leases")
            .key("leaseKey", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(item.item().is_some(), "acknowledged item {key} was lost");
    }
    let counter = client
        .get_item()
        .table_name("leases")
        .key("leaseKey", AttributeValue::S("counter".into()))
        .send()
        .await
        .unwrap();
    let stored: u64 = counter.item().unwrap()["leaseCounter"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let acked = acked_counter.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        stored == acked || stored == acked + 1,
        "counter {stored}, last acknowledged {acked}"
    );
}

/// The generation of the metadata snapshot in `data_dir` (how many times the journal has been
/// compacted into it), 0 before the first snapshot.
fn metadata_generation(data_dir: &std::path::Path) -> u64 {
    std::fs::read(data_dir.join("kinesis").join("meta.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|snapshot| snapshot["generation"].as_u64())
        .unwrap_or(0)
}

/// How far the deletion of a created stream got before the kill.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    /// Never asked for.
    None,
    /// DeleteStream sent, no answer yet.
    Sent,
    /// DeleteStream acknowledged.
    Acknowledged,
}

/// A tag value of the longest length allowed that carries the iteration `n` that wrote it.
fn tag_value(n: u64) -> String {
    format!("{n:08}{}", "v".repeat(248))
}

/// Every acknowledged metadata change survives SIGKILL: streams created and deleted, and tags
/// changed on a stream often enough that the metadata journal is compacted into new snapshots
/// along the way. The kill lands between (or in the middle of) journal appends; a torn record
/// left at the journal's end is then ignored, and changes made after recovery are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_metadata_changes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut emulator, endpoint) = spawn_emulator(dir.path()).await;
    let kinesis = client(&endpoint);
    kinesis
        .create_stream()
        .stream_name("tagged")
        .shard_count(1)
        .send()
        .await
        .unwrap();

    // Streams whose creation was acknowledged, in order, with how far their deletion got.
    let streams: Arc<Mutex<Vec<(String, Deletion)>>> = Arc::default();
    let creator = {
        let (kinesis, streams) = (kinesis.clone(), Arc::clone(&streams));
        tokio::spawn(async move {
            for n in 0.. {
                let name = format!("meta-{n}");
                let created = kinesis
                    .create_stream()
                    .stream_name(&name)
                    .shard_count(1)
                    .send()
                    .await;
                if created.is_err() {
                    return;
                }
                streams.lock().unwrap().push((name.clone(), Deletion::None));
                if n % 3 == 0 {
                    // Marked before it is sent: a kill may land after the emulator made the
                    // deletion durable but before its answer arrived.
                    streams.lock().unwrap().last_mut().unwrap().1 = Deletion::Sent;
                    if kinesis
                        .delete_stream()
                        .stream_name(&name)
                        .send()
                        .await
                        .is_err()
                    {
                        return;
                    }
                    streams.lock().unwrap().last_mut().unwrap().1 = Deletion::Acknowledged;
                }
            }
        })
    };
    // The last acknowledged iteration per tag key. Fifty keys of the longest values make every
    // journal record of the stream about 20 KB, so compactions come quickly.
    let tags: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let tagger = {
        let (kinesis, tags) = (kinesis.clone(), Arc::clone(&tags));
        tokio::spawn(async move {
            for n in 0u64.. {
                let key = format!("key-{}", n % 50);
                let added = kinesis
                    .add_tags_to_stream()
                    .stream_name("tagged")
                    .tags(&key, tag_value(n))
                    .send()
                    .await;
                if added.is_err() {
                    return;
                }
                tags.lock().unwrap().insert(key, n);
            }
        })
    };
    // Kill after at least two compactions, while both writers are still going.
    loop {
        let created = streams.lock().unwrap().len();
        if metadata_generation(dir.path()) >= 2 && created >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emulator.start_kill().expect("SIGKILL");
    emulator.wait().await.unwrap();
    creator.await.unwrap();
    tagger.await.unwrap();
    let streams = streams.lock().unwrap().clone();
    let tags = tags.lock().unwrap().clone();

    // A kill in the middle of an append leaves the start of a record: a frame header that
    // promises more bytes than follow.
    let generation = metadata_generation(dir.path());
    let journal = dir
        .path()
        .join("kinesis")
        .join(format!("meta-journal-{generation:020}.log"));
    let mut torn = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut torn, &[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']).unwrap();
    drop(torn);

    let (mut restarted, endpoint) = spawn_emulator(dir.path()).await;
    let kinesis = client(&endpoint);
    for (name, deletion) in &streams {
        let found = kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await;
        match deletion {
            Deletion::None => assert!(
                found.is_ok(),
                "acknowledged CreateStream of {name} was lost"
            ),
            // Unanswered at the kill: either outcome is allowed.
            Deletion::Sent => {}
            // Gone, or still DELETING: never back to ACTIVE.
            Deletion::Acknowledged => {
                if let Ok(found) = found {
                    let status = found.stream_description_summary().unwrap().stream_status();
                    assert_eq!(status.as_str(), "DELETING", "{name} came back");
                }
            }
        }
    }
    let recovered: BTreeMap<String, String> = kinesis
        .list_tags_for_stream()
        .stream_name("tagged")
        .limit(50)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
        .collect();
    for (key, acked) in &tags {
        let value = recovered.get(key).expect("acknowledged tag lost");
        let iteration: u64 = value[..8].parse().unwrap();
        assert!(
            iteration >= *acked,
            "{key}: acknowledged iteration {acked}, recovered {iteration}"
        );
    }

    // Changes made after recovering from the torn record are appended where it was cut off,
    // so they are read back after the next crash.
    kinesis
        .create_stream()
        .stream_name("after-torn-record")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    restarted.start_kill().expect("SIGKILL");
    restarted.wait().await.unwrap();
    let (_again, endpoint) = spawn_emulator(dir.path()).await;
    client(&endpoint)
        .describe_stream_summary()
        .stream_name("after-torn-record")
        .send()
        .await
        .expect("the change made after recovery survives");
}
