//! Shard sync across a split: a fleet keeps running for many shard-sync intervals after the
//! parent's lease was cleaned up. The finished parent must never get a lease again (that would
//! replay it from TRIM_HORIZON), no record may be processed twice, and no checkpoint may ever
//! move backwards, as seen by a watcher reading the lease table throughout.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kcl_core::LeaseStore;
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, lease_store, put_records, Fleet, Journal,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
    wait_for_active,
};

/// Orders checkpoints as a shard's progress: the starting sentinels, then sequence numbers,
/// then SHARD_END.
/// Sequence numbers are compared as numbers: by length, then digits.
fn progress(checkpoint: &str) -> (u8, usize, String) {
    match checkpoint {
        "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP" => (0, 0, String::new()),
        "SHARD_END" => (2, 0, String::new()),
        number => (1, number.len(), number.to_owned()),
    }
}

/// What a lease-table watcher found wrong: checkpoints that went backwards, and leases that
/// came back after they were deleted.
#[derive(Debug, Default)]
struct Violations {
    backwards: Vec<String>,
    recreated: Vec<String>,
}

/// Reads the table every 20 ms until `stop`, checking every lease's checkpoint history.
async fn watch_table(
    store: Arc<dyn LeaseStore>,
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Violations>>,
) {
    let mut last: HashMap<String, (u8, usize, String)> = HashMap::new();
    let mut deleted: HashSet<String> = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(leases) = store.list_leases().await else {
            continue;
        };
        let present: HashSet<String> = leases.iter().map(|l| l.lease_key.clone()).collect();
        {
            let mut found = violations.lock().unwrap();
            for lease in &leases {
                if deleted.contains(&lease.lease_key) {
                    found.recreated.push(lease.lease_key.clone());
                }
                let Some(checkpoint) = &lease.checkpoint else {
                    continue;
                };
                let now = progress(&checkpoint.sequence_number);
                if let Some(before) = last.insert(lease.lease_key.clone(), now.clone()) {
                    if now < before {
                        found
                            .backwards
                            .push(format!("{}: {before:?} -> {now:?}", lease.lease_key));
                    }
                }
            }
            for key in last.keys() {
                if !present.contains(key) {
                    deleted.insert(key.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_parent_is_never_leased_again() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("sync");
    create_active_stream(&kinesis, &stream, 4).await;
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("sync-app"),
    );
    store.initialize().await.unwrap();
    let violations = Arc::new(Mutex::new(Violations::default()));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_table(
        Arc::clone(&store),
        Arc::clone(&stop_watch),
        Arc::clone(&violations),
    ));
    let journal = Arc::new(Journal::default());
    let fleet = Fleet::start(
        &["w1", "w2", "w3"],
        "sync-app",
        &stream,
        &kinesis,
        &store,
        &journal,
        Duration::ZERO,
    )
    .await;

    put_records(&kinesis, &stream, "before", 1000).await;
    // Shard 0 of 4 holds the lowest quarter of the hash key space; split it in the middle.
    let half = (1u128 << 125).to_string();
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(half)
        .send()
        .await
        .unwrap();
    wait_for_active(&kinesis, &stream).await;
    put_records(&kinesis, &stream, "after", 1000).await;

    eventually("all 2000 records", || async {
        (journal.payloads().len() == 2000).then_some(())
    })
    .await;
    eventually("the finished parent's lease to be cleaned up", || async {
        let leases = store.list_leases().await.ok()?;
        (!leases.iter().any(|l| l.lease_key == "shardId-000000000000")).then_some(())
    })
    .await;
    // Shard sync runs every 500 ms in these settings: give it many chances to recreate the
    // parent's lease, with records still flowing into the children.
    for round in 0..8 {
        put_records(&kinesis, &stream, &format!("late{round}"), 50).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually("the late records", || async {
        (journal.payloads().len() == 2400).then_some(())
    })
    .await;
    fleet.shutdown().await;
    stop_watch.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let violations = violations.lock().unwrap();
    assert!(
        violations.recreated.is_empty(),
        "deleted leases came back: {:?}",
        violations.recreated
    );
    assert!(
        violations.backwards.is_empty(),
        "checkpoints went backwards: {:?}",
        violations.backwards
    );
    assert!(
        journal.duplicates().is_empty(),
        "{} records processed twice",
        journal.duplicates().len()
    );
    assert_ordered_per_shard(&journal);
}
