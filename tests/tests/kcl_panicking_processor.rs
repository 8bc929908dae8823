//! A processor that panics does not take the worker down: its shard restarts from the last
//! checkpoint and the stream is still processed completely.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kcl_core::PollingConfig;
use kcl_integration_tests::kcl::{
    fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_processor_is_restarted_and_the_stream_completes() {
    let emulator = start_emulator().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("panics");
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "r", 2000).await;
    let store = lease_store(dynamodb_client(moto.endpoint()), unique_name("panic-app"));
    let journal = Arc::new(Journal::default());
    journal.panics_left.store(3, Ordering::SeqCst);
    // Small batches so that there are many of them to panic in.
    let mut polling = PollingConfig::default();
    polling.max_records = 100;
    polling.idle_time_between_reads = std::time::Duration::from_millis(50);
    let scheduler = fast_builder(
        "panic-app",
        &stream,
        kinesis.clone(),
        store,
        Recorder::panicking_factory(Arc::clone(&journal), 3),
        "w",
    )
    .polling(polling)
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    let expected: HashSet<String> = (0..2000).map(|i| format!("r-{i}")).collect();
    eventually("every record despite the panics", || async {
        let seen: HashSet<String> = journal
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.data.clone())
            .collect();
        (seen == expected).then_some(())
    })
    .await;
    assert_eq!(
        journal.panics_left.load(Ordering::SeqCst),
        0,
        "all three injected panics happened"
    );
    assert!(handle.shutdown().await, "the worker is still healthy");
    task.await.unwrap().unwrap();
}
