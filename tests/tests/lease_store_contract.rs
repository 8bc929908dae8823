//! One contract for every `LeaseStore`: the in-memory store, `DynamoDbLeaseStore` against
//! `moto_server` (an independent DynamoDB implementation), and against the emulator.

use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{dynamodb_client, unique_name};
use kcl_lease::{
    CheckpointUpdate, DynamoDbLeaseStore, InMemoryLeaseStore, Lease, LeaseStore, StoredCheckpoint,
    TableConfig,
};
use std::collections::BTreeSet;

fn lease(key: &str) -> Lease {
    let mut lease = Lease::new(key, StoredCheckpoint::new("TRIM_HORIZON"));
    lease.parent_shard_ids = BTreeSet::from(["shardId-000000000000".to_owned()]);
    lease.hash_key_range = Some((
        "0".to_owned(),
        "340282366920938463463374607431768211455".to_owned(),
    ));
    lease
}

/// The behaviour every store must have.
async fn contract(store: &dyn LeaseStore) {
    store.initialize().await.unwrap();
    store.initialize().await.unwrap(); // idempotent

    // create-if-absent
    let a = lease("shardId-000000000001");
    assert!(store.create_lease_if_absent(&a).await.unwrap());
    assert!(
        !store.create_lease_if_absent(&a).await.unwrap(),
        "second create is a normal no"
    );
    assert_eq!(store.get_lease(&a.lease_key).await.unwrap().unwrap(), a);
    assert!(store.get_lease("missing").await.unwrap().is_none());

    // take: conditional on the counter
    assert!(store.take_lease(&a, "w1").await.unwrap());
    let mut held = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(held.lease_owner.as_deref(), Some("w1"));
    assert_eq!(held.lease_counter, 1);
    assert_eq!(held.owner_switches_since_checkpoint, 1);
    assert!(
        !store.take_lease(&a, "w2").await.unwrap(),
        "stale counter loses"
    );

    // renew: conditional on counter and owner
    assert!(store.renew_lease(&held).await.unwrap());
    assert!(
        !store.renew_lease(&held).await.unwrap(),
        "stale counter loses"
    );
    held.lease_counter += 1;
    let mut impostor = held.clone();
    impostor.lease_owner = Some("w2".to_owned());
    assert!(
        !store.renew_lease(&impostor).await.unwrap(),
        "wrong owner loses"
    );

    // checkpoint: fenced, resets owner switches, bumps the counter, writes pending state
    let update = CheckpointUpdate {
        checkpoint: StoredCheckpoint {
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            sub_sequence_number: 3,
        },
        pending_checkpoint: Some(StoredCheckpoint {
            sequence_number: "49590338271490256608559692538361571095921575989136588899".into(),
            sub_sequence_number: 0,
        }),
        pending_checkpoint_state: Some(b"state".to_vec()),
    };
    assert!(store.update_checkpoint(&held, &update).await.unwrap());
    assert!(
        !store.update_checkpoint(&held, &update).await.unwrap(),
        "stale counter loses"
    );
    let after = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(after.checkpoint.as_ref(), Some(&update.checkpoint));
    assert_eq!(after.pending_checkpoint, update.pending_checkpoint);
    assert_eq!(
        after.pending_checkpoint_state.as_deref(),
        Some(&b"state"[..])
    );
    assert_eq!(after.owner_switches_since_checkpoint, 0);
    assert_eq!(after.lease_counter, held.lease_counter + 1);
    let cleared = CheckpointUpdate {
        checkpoint: update.checkpoint.clone(),
        pending_checkpoint: None,
        pending_checkpoint_state: None,
    };
    assert!(store.update_checkpoint(&after, &cleared).await.unwrap());
    let after = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert!(after.pending_checkpoint.is_none() && after.pending_checkpoint_state.is_none());

    // evict: conditional on the owner
    let mut wrong = after.clone();
    wrong.lease_owner = Some("w9".to_owned());
    assert!(!store.evict_lease(&wrong).await.unwrap());
    assert!(store.evict_lease(&after).await.unwrap());
    let evicted = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(evicted.lease_owner, None);
    assert_eq!(evicted.lease_counter, after.lease_counter + 1);
    // an unowned lease can be taken again; switches count the change of owner
    assert!(store.take_lease(&evicted, "w2").await.unwrap());

    // graceful handoff (the KCL 3 writes): w3 asks w2 for the lease, w2 completes it
    let owned = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    let mut not_the_owner = owned.clone();
    not_the_owner.lease_owner = Some("w9".to_owned());
    assert!(
        !store.start_handoff(&not_the_owner, "w3").await.unwrap(),
        "only from the owner"
    );
    assert!(store.start_handoff(&owned, "w3").await.unwrap());
    let asked = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(asked.lease_owner.as_deref(), Some("w3"));
    assert_eq!(asked.checkpoint_owner.as_deref(), Some("w2"));
    assert_eq!(asked.lease_counter, owned.lease_counter, "not bumped");
    assert!(
        !store.start_handoff(&asked, "w4").await.unwrap(),
        "one handoff at a time"
    );
    // the old owner renews and checkpoints with the table's copy while it winds down
    assert!(store.renew_lease(&asked).await.unwrap());
    let mut winding_down = asked.clone();
    winding_down.lease_counter += 1;
    assert!(
        !store.complete_handoff(&asked).await.unwrap(),
        "stale counter loses"
    );
    assert!(store.complete_handoff(&winding_down).await.unwrap());
    let handed = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(handed.lease_owner.as_deref(), Some("w3"));
    assert_eq!(handed.checkpoint_owner, None);
    assert_eq!(handed.lease_counter, winding_down.lease_counter + 1);
    // a stalled handoff ends with a take, which clears checkpointOwner
    assert!(store.start_handoff(&handed, "w4").await.unwrap());
    let stalled = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert!(store.take_lease(&stalled, "w4").await.unwrap());
    let taken = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(taken.lease_owner.as_deref(), Some("w4"));
    assert_eq!(taken.checkpoint_owner, None);

    // children
    let children = BTreeSet::from([
        "shardId-000000000005".to_owned(),
        "shardId-000000000006".to_owned(),
    ]);
    assert!(store
        .update_child_shards(&a.lease_key, &children)
        .await
        .unwrap());
    assert!(!store
        .update_child_shards("missing", &children)
        .await
        .unwrap());
    assert_eq!(
        store
            .get_lease(&a.lease_key)
            .await
            .unwrap()
            .unwrap()
            .child_shard_ids,
        children
    );

    // listing pages through many leases
    for i in 10..130 {
        assert!(store
            .create_lease_if_absent(&lease(&format!("shardId-{i:012}")))
            .await
            .unwrap());
    }
    let listed = store.list_leases().await.unwrap();
    assert_eq!(listed.len(), 121);

    // delete
    store.delete_lease(&a.lease_key).await.unwrap();
    assert!(store.get_lease(&a.lease_key).await.unwrap().is_none());
    assert_eq!(store.list_leases().await.unwrap().len(), 120);
}

#[tokio::test]
async fn in_memory_store_meets_the_contract() {
    contract(&InMemoryLeaseStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_meets_the_contract_on_moto() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let store = DynamoDbLeaseStore::new(
        dynamodb_client(moto.endpoint()),
        unique_name("leases"),
        TableConfig::default(),
    );
    contract(&store).await;
    // The table has the schema the Java KCL expects.
    let table = dynamodb_client(moto.endpoint())
        .describe_table()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    assert_eq!(table.key_schema()[0].attribute_name(), "leaseKey");
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some(kcl_lease::OWNER_INDEX)
    );
}

#[tokio::test]
async fn dynamodb_store_meets_the_contract_on_the_emulator() {
    let emulator = kcl_integration_tests::start_emulator().await;
    let store = DynamoDbLeaseStore::new(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("leases"),
        TableConfig::default(),
    );
    contract(&store).await;
    let table = dynamodb_client(&emulator.endpoint_url())
        .describe_table()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    assert_eq!(table.key_schema()[0].attribute_name(), "leaseKey");
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some(kcl_lease::OWNER_INDEX)
    );
}

/// Puts the items a Java KCL 3.5 fleet keeps in its lease table besides leases (REFERENCE-KCL3
/// §0-3), then checks the store reads only the leases.
async fn skips_java_non_lease_items(client: aws_sdk_dynamodb::Client, store: &DynamoDbLeaseStore) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    store.initialize().await.unwrap();
    assert!(store
        .create_lease_if_absent(&lease("shardId-000000000007"))
        .await
        .unwrap());
    let items = [
        vec![
            ("leaseKey", S("worker-1".into())),
            ("entityType", S("WORKER_METRIC_STATS".into())),
            ("lut", N("1700000000".into())),
        ],
        vec![
            ("leaseKey", S("Leader".into())),
            ("entityType", S("LEADER".into())),
            ("ownerName", S("worker-1".into())),
            ("leaseDuration", S("120000".into())),
            ("recordVersionNumber", S("3f1c".into())),
        ],
        vec![
            ("leaseKey", S("Migration3.0".into())),
            ("entityType", S("CLIENT_VERSION_MIGRATION".into())),
            ("cv", S("CLIENT_VERSION_3X".into())),
        ],
    ];
    for item in items {
        client
            .put_item()
            .table_name(store.table_name())
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
            .await
            .unwrap();
    }
    let keys: Vec<String> = store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.lease_key)
        .collect();
    assert_eq!(keys, ["shardId-000000000007"]);
    assert_eq!(store.get_lease("Leader").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_non_lease_items_are_skipped_on_moto_and_the_emulator() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let emulator = kcl_integration_tests::start_emulator().await;
    for endpoint in [moto.endpoint().to_owned(), emulator.endpoint_url()] {
        let client = dynamodb_client(&endpoint);
        let store =
            DynamoDbLeaseStore::new(client.clone(), unique_name("mixed"), TableConfig::default());
        skips_java_non_lease_items(client, &store).await;
    }
}
