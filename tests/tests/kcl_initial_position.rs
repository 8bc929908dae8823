//! LATEST, TRIM_HORIZON and AT_TIMESTAMP starts, and a stored checkpoint winning over them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kcl_core::{InitialPosition, LeaseStore};
use kcl_integration_tests::kcl::{
    fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

/// Runs an application until it has seen `expect` records, then shuts it down gracefully.
async fn run_app(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    store: &Arc<dyn LeaseStore>,
    position: InitialPosition,
    expect: usize,
    before_waiting: impl std::future::Future<Output = ()>,
) -> Arc<Journal> {
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "app",
        stream,
        kinesis.clone(),
        Arc::clone(store),
        Recorder::factory(Arc::clone(&journal)),
        "w",
    )
    .initial_position(position)
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    before_waiting.await;
    eventually("the expected records", || async {
        (journal.count() >= expect).then_some(())
    })
    .await;
    // Give any unexpected extra record time to show up before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    journal
}

fn data(journal: &Journal) -> Vec<String> {
    journal
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.data.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_initial_position_starts_where_it_says_and_checkpoints_win() {
    let emulator = start_emulator().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("positions");
    create_active_stream(&kinesis, &stream, 2).await;
    let table = |name: &str| lease_store(dynamodb_client(moto.endpoint()), unique_name(name));
    put_records(&kinesis, &stream, "old", 50).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_records(&kinesis, &stream, "mid", 50).await;

    // TRIM_HORIZON: everything retained.
    let trim_store = table("trim");
    let trim = run_app(
        &kinesis,
        &stream,
        &trim_store,
        InitialPosition::TrimHorizon,
        100,
        async {},
    )
    .await;
    assert_eq!(data(&trim).len(), 100);

    // AT_TIMESTAMP: only what arrived after the cut.
    let at = run_app(
        &kinesis,
        &stream,
        &table("at"),
        InitialPosition::AtTimestamp(cut),
        50,
        async {},
    )
    .await;
    assert!(
        data(&at).iter().all(|d| d.starts_with("mid-")),
        "{:?}",
        data(&at)
    );
    assert_eq!(data(&at).len(), 50);

    // LATEST: only what is written after the worker started reading.
    let latest_store = table("latest");
    let latest = run_app(
        &kinesis,
        &stream,
        &latest_store,
        InitialPosition::Latest,
        30,
        async {
            eventually("the LATEST worker to hold both leases", || async {
                let leases = latest_store.list_leases().await.ok()?;
                (leases.len() == 2 && leases.iter().all(|l| l.lease_owner.is_some())).then_some(())
            })
            .await;
            // The consumers take their LATEST iterators right after taking the leases.
            tokio::time::sleep(Duration::from_millis(500)).await;
            put_records(&kinesis, &stream, "new", 30).await;
        },
    )
    .await;
    assert!(
        data(&latest).iter().all(|d| d.starts_with("new-")),
        "{:?}",
        data(&latest)
    );

    // A stored checkpoint wins: the TRIM_HORIZON application restarted with LATEST resumes at
    // its checkpoints and so sees the records written while it was down.
    put_records(&kinesis, &stream, "while-down", 20).await;
    let resumed = run_app(
        &kinesis,
        &stream,
        &trim_store,
        InitialPosition::Latest,
        20,
        async {},
    )
    .await;
    let resumed = data(&resumed);
    assert_eq!(
        resumed
            .iter()
            .filter(|d| d.starts_with("while-down-"))
            .count(),
        20
    );
    assert!(
        resumed
            .iter()
            .all(|d| !d.starts_with("old-") && !d.starts_with("mid-")),
        "nothing before the checkpoints"
    );
}
