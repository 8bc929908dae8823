//! One worker, four shards, 10,000 records: everything processed once, in order per shard,
//! checkpointed at the last record; a restart from those checkpoints processes nothing again.

use std::sync::Arc;

use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_processes_every_record_once_and_restarts_from_checkpoints() {
    let emulator = start_emulator().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("single");
    create_active_stream(&kinesis, &stream, 4).await;
    put_records(&kinesis, &stream, "r", 10_000).await;
    let store = lease_store(dynamodb_client(moto.endpoint()), unique_name("app"));

    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "app",
        &stream,
        kinesis.clone(),
        Arc::clone(&store),
        Recorder::factory(Arc::clone(&journal)),
        "w1",
    )
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    eventually("10,000 records processed", || async {
        (journal.count() >= 10_000).then_some(())
    })
    .await;
    assert!(handle.shutdown().await, "graceful shutdown completes");
    task.await.unwrap().unwrap();
    assert_eq!(journal.count(), 10_000);
    assert!(journal.duplicates().is_empty());
    assert_ordered_per_shard(&journal);
    assert_eq!(journal.by_shard().len(), 4);

    // Checkpoints sit at each shard's last record, and the leases were released.
    let leases = store.list_leases().await.unwrap();
    for lease in &leases {
        let last = journal
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|d| d.shard_id == lease.lease_key)
            .cloned()
            .unwrap();
        assert_eq!(
            lease.checkpoint.as_ref().unwrap().sequence_number,
            last.sequence_number,
            "{}",
            lease.lease_key
        );
        assert_eq!(lease.lease_owner, None, "released on shutdown");
    }

    // A new worker resumes from the checkpoints: only new records arrive.
    let again = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "app",
        &stream,
        kinesis.clone(),
        Arc::clone(&store),
        Recorder::factory(Arc::clone(&again)),
        "w2",
    )
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    put_records(&kinesis, &stream, "late", 100).await;
    eventually("the 100 new records", || async {
        (again.count() >= 100).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    let data: Vec<String> = again
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.data.clone())
        .collect();
    assert_eq!(data.len(), 100, "nothing processed twice");
    assert!(data.iter().all(|d| d.starts_with("late-")));
}
