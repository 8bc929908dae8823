//! A fleet of three workers balances twelve shards; a worker killed without shutting down has
//! its shards taken over after the failover time with no record lost; a graceful shutdown hands
//! shards over promptly without reprocessing past the last checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kcl_core::LeaseStore;
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

async fn owners(store: &Arc<dyn LeaseStore>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for lease in store.list_leases().await.unwrap() {
        if let Some(owner) = lease.lease_owner {
            *counts.entry(owner).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_balance_survive_a_crash_and_hand_over_gracefully() {
    let emulator = start_emulator().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("fleet");
    create_active_stream(&kinesis, &stream, 12).await;
    let store = lease_store(dynamodb_client(moto.endpoint()), unique_name("fleet-app"));
    store.initialize().await.unwrap();
    let journal = Arc::new(Journal::default());
    let worker = |id: &str| {
        fast_builder(
            "fleet-app",
            &stream,
            kinesis.clone(),
            Arc::clone(&store),
            Recorder::factory(Arc::clone(&journal)),
            id,
        )
        .build()
        .unwrap()
    };
    let (w1, w2, w3) = (worker("w1"), worker("w2"), worker("w3"));
    let (h1, h2) = (w1.handle(), w2.handle());
    let (t1, t2, t3) = (spawn(w1), spawn(w2), spawn(w3));

    put_records(&kinesis, &stream, "a", 3000).await;
    eventually("the fleet to balance 12 shards 4/4/4", || async {
        let counts = owners(&store).await;
        (counts.len() == 3 && counts.values().all(|n| *n == 4)).then_some(())
    })
    .await;
    eventually("3000 records", || async {
        (journal.count() >= 3000).then_some(())
    })
    .await;

    // w3 dies without a word: its leases stay owned by it until they expire.
    t3.abort();
    let _ = t3.await;
    put_records(&kinesis, &stream, "b", 3000).await;
    eventually("w1 and w2 to take over w3's shards", || async {
        let counts = owners(&store).await;
        (!counts.contains_key("w3") && counts.values().sum::<usize>() == 12).then_some(())
    })
    .await;
    let expected: HashSet<String> = (0..3000)
        .flat_map(|i| [format!("a-{i}"), format!("b-{i}")])
        .collect();
    eventually("every record of both rounds, none lost", || async {
        let seen: HashSet<String> = journal
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.data.clone())
            .collect();
        expected.is_subset(&seen).then_some(())
    })
    .await;
    assert_ordered_per_shard(&journal);

    // w2 leaves gracefully: it checkpoints and releases, w1 takes over without redoing work.
    let before = journal.count();
    let already: HashSet<String> = journal
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.data.clone())
        .collect();
    assert!(h2.shutdown().await, "w2 shuts down gracefully");
    t2.await.unwrap().unwrap();
    eventually("w1 to hold all 12 shards", || async {
        let counts = owners(&store).await;
        (counts.get("w1") == Some(&12)).then_some(())
    })
    .await;
    put_records(&kinesis, &stream, "c", 600).await;
    eventually("the third round", || async {
        let seen = journal
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.data.starts_with("c-"))
            .count();
        (seen >= 600).then_some(())
    })
    .await;
    let after: Vec<String> = journal.deliveries.lock().unwrap()[before..]
        .iter()
        .map(|d| d.data.clone())
        .collect();
    let redone: Vec<&String> = after.iter().filter(|d| already.contains(*d)).collect();
    assert!(
        redone.is_empty(),
        "after a graceful handover nothing is reprocessed: {redone:?}"
    );
    assert!(h1.shutdown().await);
    t1.await.unwrap().unwrap();
}
