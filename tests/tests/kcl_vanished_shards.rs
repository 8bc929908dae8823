//! Shards that no longer exist: a stream deleted under running workers, and in a multi-stream
//! application under the former-streams policy. The consumers stop cleanly instead of
//! restarting forever, and the rest of the application carries on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kcl_core::FormerStreamsPolicy;
use kcl_integration_tests::kcl::{
    fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

/// A factory of recorders that counts the processors it made: a consumer that restarts makes
/// a new one each time.
fn counting_factory(
    journal: &Arc<Journal>,
    made: &Arc<AtomicUsize>,
) -> impl Fn(&str) -> Recorder + Send + Sync {
    let inner = Recorder::factory(Arc::clone(journal));
    let made = Arc::clone(made);
    move |shard_id: &str| {
        made.fetch_add(1, Ordering::SeqCst);
        inner(shard_id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_stops_its_consumers_cleanly() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("doomed");
    create_active_stream(&kinesis, &stream, 2).await;
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("doomed-app"),
    );
    let journal = Arc::new(Journal::default());
    let made = Arc::new(AtomicUsize::new(0));
    let worker = fast_builder(
        "doomed-app",
        &stream,
        kinesis.clone(),
        Arc::clone(&store),
        counting_factory(&journal, &made),
        "w1",
    )
    .build()
    .unwrap();
    let handle = worker.handle();
    let task = spawn(worker);
    put_records(&kinesis, &stream, "r", 200).await;
    eventually("the records", || async {
        (journal.payloads().len() == 200).then_some(())
    })
    .await;
    let before = made.load(Ordering::SeqCst);
    assert_eq!(before, 2, "one processor per shard");

    kinesis
        .delete_stream()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    // Long enough for a consumer that restarts on failure to do so many times (restart
    // back-off starts at 50 ms in these settings), and for several shard syncs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        made.load(Ordering::SeqCst),
        before,
        "consumers of a deleted stream were restarted"
    );
    // The checkpoints stay where they were: nothing rewound or removed them.
    let leases = store.list_leases().await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(
        handle.shutdown().await,
        "the worker still shuts down cleanly"
    );
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_of_a_multi_stream_application_follows_the_former_streams_policy() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let kept = unique_name("kept");
    let doomed = unique_name("doomed");
    create_active_stream(&kinesis, &kept, 1).await;
    create_active_stream(&kinesis, &doomed, 2).await;
    let application = unique_name("multi-doomed");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    let journal = Arc::new(Journal::default());
    let made = Arc::new(AtomicUsize::new(0));
    let worker = fast_builder(
        &application,
        &kept,
        kinesis.clone(),
        Arc::clone(&store),
        counting_factory(&journal, &made),
        "w1",
    )
    .streams([kept.clone(), doomed.clone()])
    .former_streams(FormerStreamsPolicy::DeleteAfter(Duration::from_secs(1)))
    .build()
    .unwrap();
    let handle = worker.handle();
    let task = spawn(worker);
    put_records(&kinesis, &kept, "kept", 100).await;
    put_records(&kinesis, &doomed, "doomed", 100).await;
    eventually("the records of both streams", || async {
        (journal.payloads().len() == 200).then_some(())
    })
    .await;
    assert_eq!(store.list_leases().await.unwrap().len(), 3);

    kinesis
        .delete_stream()
        .stream_name(&doomed)
        .send()
        .await
        .unwrap();
    eventually("the deleted stream's leases to be deleted", || async {
        let leases = store.list_leases().await.ok()?;
        let left: Vec<_> = leases
            .iter()
            .filter(|l| l.lease_key.contains(&doomed))
            .collect();
        left.is_empty().then_some(())
    })
    .await;
    // The other stream is still read.
    put_records(&kinesis, &kept, "later", 100).await;
    eventually("the kept stream's later records", || async {
        (journal.payloads().len() == 300).then_some(())
    })
    .await;
    assert_eq!(made.load(Ordering::SeqCst), 3, "no consumer restarted");
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert!(journal.duplicates().is_empty());
}

/// A closed parent that was trimmed past retention before it was processed to its end: its
/// consumer finds it gone, ends it (creating its children's leases), and the children start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_parent_counts_as_finished_and_its_children_start() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("trimmed");
    create_active_stream(&kinesis, &stream, 1).await;
    let application = unique_name("trimmed-app");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    let journal = Arc::new(Journal::default());
    let made = Arc::new(AtomicUsize::new(0));
    let worker = |id: &str| {
        fast_builder(
            &application,
            &stream,
            kinesis.clone(),
            Arc::clone(&store),
            counting_factory(&journal, &made),
            id,
        )
        .build()
        .unwrap()
    };
    // A first worker processes part of shard 0, then stops: the lease keeps its checkpoint.
    let first = worker("w1");
    let handle = first.handle();
    let task = spawn(first);
    put_records(&kinesis, &stream, "early", 100).await;
    eventually("the early records", || async {
        (journal.payloads().len() == 100).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();

    // While no worker runs: more records, a split, and then the retention period passes, so
    // the closed parent (with records never processed) is gone.
    put_records(&kinesis, &stream, "lost", 50).await;
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    kcl_integration_tests::wait_for_active(&kinesis, &stream).await;
    emulator.advance_clock(Duration::from_secs(25 * 3600));

    let second = worker("w2");
    let handle = second.handle();
    let task = spawn(second);
    put_records(&kinesis, &stream, "child", 100).await;
    eventually("the children's records", || async {
        let payloads = journal.payloads();
        (0..100)
            .all(|i| payloads.contains(&format!("child-{i}")))
            .then_some(())
    })
    .await;
    let parent = store.get_lease("shardId-000000000000").await.unwrap();
    assert!(
        parent.as_ref().is_none_or(|p| p.is_shard_end()),
        "the parent's lease is ended or cleaned up: {parent:?}"
    );
    let made_now = made.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        made.load(Ordering::SeqCst),
        made_now,
        "no consumer restarts"
    );
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert!(journal.duplicates().is_empty());
}
