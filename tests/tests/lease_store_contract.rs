//! One contract for every `LeaseStore`: the in-memory store, `DynamoDbLeaseStore` against
//! `moto_server` (an independent DynamoDB implementation), and against the emulator.

use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{dynamodb_client, unique_name};
use kcl_lease::{
    CheckpointUpdate, DynamoDbLeaseStore, InMemoryLeaseStore, LeaderLock, Lease, LeaseStore,
    MigrationHistoryEntry, MigrationState, StoredCheckpoint, TableConfig, WorkerMetrics,
    METRIC_CPU,
};
use std::collections::{BTreeMap, BTreeSet};

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

// ---- KCL 3 coordination: the leader's and workers' writes ----

fn metrics(worker: &str, cpu: &[f64], lut: u64) -> WorkerMetrics {
    let mut metrics = WorkerMetrics::new(worker);
    metrics.last_update_secs = lut;
    metrics.stats = BTreeMap::from([(METRIC_CPU.to_owned(), cpu.to_vec())]);
    metrics.operating_range = BTreeMap::from([(METRIC_CPU.to_owned(), vec![100.0])]);
    metrics
}

fn lock(owner: &str, version: &str, successor: Option<&str>) -> LeaderLock {
    LeaderLock {
        owner: owner.to_owned(),
        lease_duration_ms: 10_000,
        record_version: version.to_owned(),
        successor: successor.map(str::to_owned),
        liveness_by_heartbeat: true,
        fleet: Vec::new(),
    }
}

async fn sorted_keys_of(store: &dyn LeaseStore, owner: &str) -> Vec<String> {
    let mut keys = store.lease_keys_of_owner(owner).await.unwrap();
    keys.sort();
    keys
}

/// The KCL 3 operations every store must have, on a fresh table.
async fn kcl3_contract(store: &dyn LeaseStore) {
    store.initialize().await.unwrap();
    let a = lease("shardId-000000000001");
    let b = lease("shardId-000000000002");
    let c = lease("shardId-000000000003");
    for l in [&a, &b, &c] {
        assert!(store.create_lease_if_absent(l).await.unwrap());
    }

    // assign: conditioned on both owners and on the lease existing, not on the counter
    assert!(store.assign_lease(&a, "w1").await.unwrap());
    let assigned = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(assigned.lease_owner.as_deref(), Some("w1"));
    assert_eq!(assigned.lease_counter, a.lease_counter + 1);
    assert_eq!(assigned.owner_switches_since_checkpoint, 1);
    assert!(
        !store.assign_lease(&a, "w2").await.unwrap(),
        "the leader's copy says unowned: stale"
    );
    assert!(store.renew_lease(&assigned).await.unwrap());
    assert!(
        store.assign_lease(&assigned, "w1").await.unwrap(),
        "a renewal since the scan does not defeat the leader"
    );
    let same_owner = store.get_lease(&a.lease_key).await.unwrap().unwrap();
    assert_eq!(same_owner.lease_counter, assigned.lease_counter + 2);
    assert_eq!(
        same_owner.owner_switches_since_checkpoint, 1,
        "no switch when the owner stays"
    );
    let missing = lease("shardId-000000000099");
    assert!(!store.assign_lease(&missing, "w1").await.unwrap());
    assert!(
        store.get_lease(&missing.lease_key).await.unwrap().is_none(),
        "assigning a missing lease creates nothing"
    );
    assert!(store.assign_lease(&b, "w1").await.unwrap());
    assert!(store.assign_lease(&c, "w2").await.unwrap());

    // assign during a handoff: the checkpoint owner is part of the condition
    let owned_c = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert!(store.start_handoff(&owned_c, "w3").await.unwrap());
    let mut without_handoff = owned_c.clone();
    without_handoff.lease_owner = Some("w3".to_owned());
    assert!(
        !store.assign_lease(&without_handoff, "w2").await.unwrap(),
        "checkpointOwner differs from the leader's copy"
    );
    let handing = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert_eq!(handing.checkpoint_owner.as_deref(), Some("w2"));
    assert!(
        store.assign_lease(&handing, "w2").await.unwrap(),
        "the leader gives the lease back to its checkpoint owner"
    );
    let back = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert_eq!(back.lease_owner.as_deref(), Some("w2"));
    assert_eq!(back.checkpoint_owner, None);
    assert_eq!(back.lease_counter, handing.lease_counter + 1);
    assert_eq!(
        back.owner_switches_since_checkpoint,
        handing.owner_switches_since_checkpoint + 1,
        "the checkpoint owner was the new owner: a switch"
    );

    // the owner index
    assert_eq!(
        sorted_keys_of(store, "w1").await,
        [a.lease_key.clone(), b.lease_key.clone()]
    );
    assert_eq!(
        sorted_keys_of(store, "w2").await,
        std::slice::from_ref(&c.lease_key)
    );
    assert!(sorted_keys_of(store, "nobody").await.is_empty());

    // unassign: owners as in assign; during a handoff only the handoff ends
    let owned_b = store.get_lease(&b.lease_key).await.unwrap().unwrap();
    let mut wrong = owned_b.clone();
    wrong.lease_owner = Some("w9".to_owned());
    assert!(!store.unassign_lease(&wrong).await.unwrap());
    assert!(!store.unassign_lease(&missing).await.unwrap());
    assert!(store.get_lease(&missing.lease_key).await.unwrap().is_none());
    assert!(store.unassign_lease(&owned_b).await.unwrap());
    let unowned = store.get_lease(&b.lease_key).await.unwrap().unwrap();
    assert_eq!(unowned.lease_owner, None);
    assert_eq!(unowned.lease_counter, owned_b.lease_counter + 1);
    assert_eq!(
        sorted_keys_of(store, "w1").await,
        std::slice::from_ref(&a.lease_key)
    );
    assert!(store.start_handoff(&back, "w3").await.unwrap());
    let handing = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert!(store.unassign_lease(&handing).await.unwrap());
    let ended = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert_eq!(
        ended.lease_owner.as_deref(),
        Some("w3"),
        "the next owner keeps it"
    );
    assert_eq!(ended.checkpoint_owner, None);
    assert_eq!(ended.lease_counter, handing.lease_counter + 1);

    // renew writes the lease's throughput when it is known
    let mut measured = ended.clone();
    measured.throughput_kbps = Some(12.5);
    assert!(store.renew_lease(&measured).await.unwrap());
    let renewed = store.get_lease(&c.lease_key).await.unwrap().unwrap();
    assert_eq!(renewed.throughput_kbps, Some(12.5));

    // worker metrics: each report bumps hbc and answers with what others set; a new item's
    // counter starts at the clock (epoch ms)
    let before = kcl_lease::heartbeat_base();
    let first = store
        .report_worker_metrics(&metrics("w1", &[10.0], 1_700_000_000))
        .await
        .unwrap();
    let base = first.heartbeat.unwrap() - 1;
    assert!(
        (before..=kcl_lease::heartbeat_base()).contains(&base),
        "{base} not within the call"
    );
    assert_eq!(first.assignment_generation, 0);
    assert!(!first.draining);
    assert_eq!(first.stats[METRIC_CPU], [10.0]);
    store.notify_assignment("w1").await.unwrap();
    store.notify_assignment("w1").await.unwrap();
    assert!(store.set_worker_draining("w1", true).await.unwrap());
    let second = store
        .report_worker_metrics(&metrics("w1", &[10.0, 20.0], 1_700_000_001))
        .await
        .unwrap();
    assert_eq!(second.heartbeat, Some(base + 2));
    assert_eq!(second.assignment_generation, 2, "ag is not clobbered");
    assert!(second.draining, "drn is not clobbered");
    assert_eq!(second.stats[METRIC_CPU], [10.0, 20.0]);
    assert_eq!(second.operating_range[METRIC_CPU], [100.0]);
    assert_eq!(second.last_update_secs, 1_700_000_001);
    assert!(store.set_worker_draining("w1", false).await.unwrap());
    let read = store.get_worker_metrics(&["w1".to_owned()]).await.unwrap();
    assert_eq!(read.len(), 1);
    assert!(!read[0].draining);
    assert_eq!(read[0].heartbeat, Some(base + 2));

    // a worker without an item: nothing is created
    store.notify_assignment("ghost").await.unwrap();
    assert!(!store.set_worker_draining("ghost", true).await.unwrap());
    assert!(store
        .get_worker_metrics(&["ghost".to_owned()])
        .await
        .unwrap()
        .is_empty());

    // BatchGet over more than 100 ids, with missing ones, a lease's key and a repeated id
    let fleet: Vec<String> = (0..105).map(|i| format!("worker-{i:03}")).collect();
    for id in &fleet {
        store
            .report_worker_metrics(&metrics(id, &[], 1_700_000_000))
            .await
            .unwrap();
    }
    let mut asked = fleet.clone();
    asked.extend(["ghost".to_owned(), a.lease_key.clone(), "w1".to_owned()]);
    asked.insert(0, "worker-000".to_owned());
    let mut found: Vec<String> = store
        .get_worker_metrics(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.worker_id)
        .collect();
    found.sort();
    let mut expected = fleet.clone();
    expected.push("w1".to_owned());
    expected.sort();
    assert_eq!(found, expected);

    // deleting a stale worker's item: only while lut is what the leader saw
    assert!(!store
        .delete_worker_metrics("w1", 1_700_000_000)
        .await
        .unwrap());
    assert!(!store
        .delete_worker_metrics("ghost", 1_700_000_000)
        .await
        .unwrap());
    assert!(store
        .delete_worker_metrics("w1", 1_700_000_001)
        .await
        .unwrap());
    assert!(store
        .get_worker_metrics(&["w1".to_owned()])
        .await
        .unwrap()
        .is_empty());
    // the same worker back at once (a restart): its new item's counter carries on above the
    // old one's, so the leader reads it as alive, not as a stale read of the old item
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = store
        .report_worker_metrics(&metrics("w1", &[10.0], 1_700_000_002))
        .await
        .unwrap();
    assert!(again.heartbeat.unwrap() > base + 2);
    assert!(store
        .delete_worker_metrics("w1", 1_700_000_002)
        .await
        .unwrap());

    // the leader lock
    assert_eq!(store.get_leader_lock().await.unwrap(), None);
    assert!(
        !store
            .acquire_leader_lock(&lock("w1", "v1", None), Some("v0"))
            .await
            .unwrap(),
        "no lock to take over"
    );
    assert!(
        !store
            .renew_leader_lock(&lock("w1", "v1", None), "v0")
            .await
            .unwrap(),
        "no lock to renew"
    );
    assert!(store
        .acquire_leader_lock(&lock("w1", "v1", Some("w2")), None)
        .await
        .unwrap());
    assert!(
        !store
            .acquire_leader_lock(&lock("w2", "v2", None), None)
            .await
            .unwrap(),
        "lost the race"
    );
    assert_eq!(
        store.get_leader_lock().await.unwrap(),
        Some(lock("w1", "v1", Some("w2")))
    );
    assert!(
        !store
            .renew_leader_lock(&lock("w2", "v3", None), "v1")
            .await
            .unwrap(),
        "only the owner renews"
    );
    assert!(
        !store
            .renew_leader_lock(&lock("w1", "v3", None), "v0")
            .await
            .unwrap(),
        "at the version it last wrote"
    );
    assert!(store
        .renew_leader_lock(&lock("w1", "v3", Some("w3")), "v1")
        .await
        .unwrap());
    assert_eq!(
        store.get_leader_lock().await.unwrap(),
        Some(lock("w1", "v3", Some("w3")))
    );
    assert!(
        !store
            .acquire_leader_lock(&lock("w3", "v4", None), Some("v1"))
            .await
            .unwrap(),
        "the leader renewed since: no takeover"
    );
    let mut java_style = lock("w3", "v4", None);
    java_style.lease_duration_ms = 120_000;
    java_style.liveness_by_heartbeat = false;
    assert!(store
        .acquire_leader_lock(&java_style, Some("v3"))
        .await
        .unwrap());
    assert_eq!(
        store.get_leader_lock().await.unwrap(),
        Some(java_style.clone())
    );
    assert!(
        !store
            .release_leader_lock(&lock("w1", "v3", None))
            .await
            .unwrap(),
        "the old leader cannot release the new one's lock"
    );
    assert!(store.release_leader_lock(&java_style).await.unwrap());
    assert_eq!(store.get_leader_lock().await.unwrap(), None);
    assert!(store
        .acquire_leader_lock(&lock("w2", "v5", None), None)
        .await
        .unwrap());

    // the migration state
    assert_eq!(store.get_migration_state().await.unwrap(), None);
    let upgrade = MigrationState {
        client_version: "CLIENT_VERSION_UPGRADE_FROM_2X".to_owned(),
        modified_by: "w1".to_owned(),
        modified_at_ms: 1_700_000_000_000,
        history: Vec::new(),
    };
    assert!(
        !store
            .put_migration_state(&upgrade, Some("CLIENT_VERSION_2X"))
            .await
            .unwrap(),
        "nothing to update"
    );
    assert!(store.put_migration_state(&upgrade, None).await.unwrap());
    assert!(
        !store.put_migration_state(&upgrade, None).await.unwrap(),
        "only if absent"
    );
    let done = MigrationState {
        client_version: "CLIENT_VERSION_3X".to_owned(),
        modified_by: "w2".to_owned(),
        modified_at_ms: 1_700_000_060_000,
        history: vec![MigrationHistoryEntry {
            client_version: upgrade.client_version.clone(),
            modified_by: upgrade.modified_by.clone(),
            modified_at_ms: upgrade.modified_at_ms,
        }],
    };
    assert!(!store
        .put_migration_state(&done, Some("CLIENT_VERSION_3X_WITH_ROLLBACK"))
        .await
        .unwrap());
    assert!(store
        .put_migration_state(&done, Some("CLIENT_VERSION_UPGRADE_FROM_2X"))
        .await
        .unwrap());
    assert_eq!(
        store.get_migration_state().await.unwrap(),
        Some(done.clone())
    );

    // one scan sorts every item by kind
    let snapshot = store.scan_table().await.unwrap();
    let mut lease_keys: Vec<&str> = snapshot
        .leases
        .iter()
        .map(|l| l.lease_key.as_str())
        .collect();
    lease_keys.sort_unstable();
    assert_eq!(
        lease_keys,
        [
            a.lease_key.as_str(),
            b.lease_key.as_str(),
            c.lease_key.as_str()
        ]
    );
    assert_eq!(snapshot.workers.len(), fleet.len());
    assert!(snapshot
        .workers
        .iter()
        .all(|w| w.heartbeat.is_some_and(|beat| beat > 1_600_000_000_000)));
    assert_eq!(snapshot.leader, Some(lock("w2", "v5", None)));
    assert_eq!(snapshot.migration, Some(done));
    let scanned_c = snapshot
        .leases
        .iter()
        .find(|l| l.lease_key == c.lease_key)
        .unwrap();
    assert_eq!(
        scanned_c,
        &store.get_lease(&c.lease_key).await.unwrap().unwrap()
    );
}

#[tokio::test]
async fn in_memory_store_meets_the_kcl3_contract() {
    kcl3_contract(&InMemoryLeaseStore::new()).await;
}

/// On DynamoDB: the contract, then what only a real table can hold: Java's other item kinds
/// (skipped by the scan), and a table without the owner index (the keys come from a scan).
async fn kcl3_contract_on_dynamodb(endpoint: &str) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let client = dynamodb_client(endpoint);
    let store =
        DynamoDbLeaseStore::new(client.clone(), unique_name("kcl3"), TableConfig::default());
    store.initialize().await.unwrap();
    let java_items = [
        vec![
            ("leaseKey", S("TableMigration3.5".into())),
            ("entityType", S("TABLE_MIGRATION".into())),
            ("tm", S("COMPLETE".into())),
        ],
        vec![
            ("leaseKey", S("123456789012:orders:1700000000".into())),
            ("entityType", S("STREAM".into())),
            ("streamCreationEpoch", N("1700000000".into())),
        ],
    ];
    for item in java_items {
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
    kcl3_contract(&store).await;

    let mut no_index = TableConfig::default();
    no_index.owner_index = false;
    let bare = DynamoDbLeaseStore::new(client.clone(), unique_name("noindex"), no_index);
    bare.initialize().await.unwrap();
    let described = client
        .describe_table()
        .table_name(bare.table_name())
        .send()
        .await
        .unwrap();
    assert!(described
        .table()
        .unwrap()
        .global_secondary_indexes()
        .is_empty());
    assert!(
        !bare.owner_index_ready().await.unwrap(),
        "no owner index: the upgrade from 2.x waits"
    );
    for key in ["shardId-000000000001", "shardId-000000000002"] {
        let l = lease(key);
        assert!(bare.create_lease_if_absent(&l).await.unwrap());
        assert!(bare.assign_lease(&l, "w1").await.unwrap());
    }
    assert!(bare
        .report_worker_metrics(&metrics("w1", &[1.0], 1))
        .await
        .unwrap()
        .heartbeat
        .is_some());
    assert_eq!(
        sorted_keys_of(&bare, "w1").await,
        ["shardId-000000000001", "shardId-000000000002"]
    );

    // a KCL 3 worker on that table adds the index, as Java's does, and waits for it
    let upgraded = DynamoDbLeaseStore::new(
        client.clone(),
        bare.table_name().to_owned(),
        TableConfig::default(),
    );
    upgraded.initialize().await.unwrap();
    upgraded.initialize().await.unwrap(); // idempotent
    assert!(upgraded.owner_index_ready().await.unwrap());
    let described = client
        .describe_table()
        .table_name(bare.table_name())
        .send()
        .await
        .unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0].index_name(), Some(kcl_lease::OWNER_INDEX));
    assert_eq!(
        indexes[0].index_status(),
        Some(&aws_sdk_dynamodb::types::IndexStatus::Active)
    );
    let by_index: Vec<String> = client
        .query()
        .table_name(bare.table_name())
        .index_name(kcl_lease::OWNER_INDEX)
        .key_condition_expression("leaseOwner = :owner")
        .expression_attribute_values(":owner", S("w1".into()))
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|item| item["leaseKey"].as_s().unwrap().clone())
        .collect();
    assert_eq!(by_index, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(
        sorted_keys_of(&upgraded, "w1").await,
        ["shardId-000000000001", "shardId-000000000002"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_meets_the_kcl3_contract_on_moto() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    kcl3_contract_on_dynamodb(moto.endpoint()).await;
}

#[tokio::test]
async fn dynamodb_store_meets_the_kcl3_contract_on_the_emulator() {
    let emulator = kcl_integration_tests::start_emulator().await;
    kcl3_contract_on_dynamodb(&emulator.endpoint_url()).await;
}
