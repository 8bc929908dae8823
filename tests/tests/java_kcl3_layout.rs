//! The lease table in the Java KCL 3.5 layout, both ways, with boto3 as the independent client:
//! items written as a Java 3.5 fleet writes them are read by `DynamoDbLeaseStore`, and items
//! written by `DynamoDbLeaseStore` are read back by boto3 in Java's attribute names and types.
//! Against the emulator and `moto_server`.

use std::collections::{BTreeMap, BTreeSet};

use kcl_integration_tests::python::{python_env, MotoServer};
use kcl_integration_tests::{dynamodb_client, start_emulator, unique_name};
use kcl_lease::{
    DynamoDbLeaseStore, LeaderLock, Lease, LeaseStore, MigrationHistoryEntry, MigrationState,
    StoredCheckpoint, TableConfig, WorkerMetrics, METRIC_CPU,
};

/// Writes, as a Java KCL 3.5 leader and its workers do (REFERENCE-KCL3 §0-3): the table with
/// its owner index, leases tagged `LEASE` with the creation quirk (`pendingCheckpointState` as
/// a number) and one mid-handoff, a worker metrics item, the lock with its string duration,
/// the migration state with history, and the table migration marker.
const WRITE_JAVA_TABLE: &str = r#"
import os, sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
table = sys.argv[2]
ddb.create_table(
    TableName=table, BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"},
                          {"AttributeName": "leaseOwner", "AttributeType": "S"}],
    GlobalSecondaryIndexes=[{
        "IndexName": "LeaseOwnerToLeaseKeyIndex",
        "KeySchema": [{"AttributeName": "leaseOwner", "KeyType": "HASH"},
                      {"AttributeName": "leaseKey", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}}])
ddb.get_waiter("table_exists").wait(TableName=table)
put = lambda item: ddb.put_item(TableName=table, Item=item)
put({"leaseKey": {"S": "shardId-000000000000"}, "entityType": {"S": "LEASE"},
     "leaseCounter": {"N": "42"}, "leaseOwner": {"S": "java-worker-1"},
     "checkpoint": {"S": "49590338271490256608559692538361571095921575989136588898"},
     "checkpointSubSequenceNumber": {"N": "3"}, "ownerSwitchesSinceCheckpoint": {"N": "1"},
     "pendingCheckpointState": {"N": "0"}, "throughputKBps": {"N": "12.5"},
     "startingHashKey": {"S": "0"},
     "endingHashKey": {"S": "170141183460469231731687303715884105727"},
     "childShardIds": {"SS": ["shardId-000000000002"]}})
put({"leaseKey": {"S": "shardId-000000000001"}, "entityType": {"S": "LEASE"},
     "leaseCounter": {"N": "7"}, "leaseOwner": {"S": "java-worker-2"},
     "checkpointOwner": {"S": "java-worker-1"},
     "checkpoint": {"S": "TRIM_HORIZON"}, "checkpointSubSequenceNumber": {"N": "0"},
     "ownerSwitchesSinceCheckpoint": {"N": "0"},
     "parentShardId": {"SS": ["shardId-000000000009"]}})
put({"leaseKey": {"S": "java-worker-1"}, "entityType": {"S": "WORKER_METRIC_STATS"},
     "lut": {"N": "1700000030"}, "sup": {"N": "1"}, "slu": {"N": "1700000030"},
     "sts": {"M": {"C": {"L": [{"N": "41.5"}, {"N": "-1"}, {"N": "42"}]}}},
     "opr": {"M": {"C": {"L": [{"N": "100"}]}}}})
put({"leaseKey": {"S": "java-worker-2"}, "entityType": {"S": "WORKER_METRIC_STATS"},
     "lut": {"N": "1700000031"}, "sts": {"M": {}}, "opr": {"M": {}}})
put({"leaseKey": {"S": "Leader"}, "entityType": {"S": "LEADER"},
     "ownerName": {"S": "java-worker-1"}, "leaseDuration": {"S": "120000"},
     "recordVersionNumber": {"S": "4f1c9a52-0d8e-4b8e-9d4e-2f0f6c1d2e3a"}})
put({"leaseKey": {"S": "Migration3.0"}, "entityType": {"S": "CLIENT_VERSION_MIGRATION"},
     "cv": {"S": "CLIENT_VERSION_3X"}, "mb": {"S": "java-worker-1"},
     "mts": {"N": "1700000000000"},
     "h": {"L": [{"M": {"cv": {"S": "CLIENT_VERSION_3X_WITH_ROLLBACK"},
                        "mb": {"S": "java-worker-2"}, "mts": {"N": "1699999990000"}}},
                 {"M": {"cv": {"S": "CLIENT_VERSION_UPGRADE_FROM_2X"},
                        "mb": {"S": "java-worker-2"}, "mts": {"N": "1699999980000"}}}]}})
put({"leaseKey": {"S": "TableMigration3.5"}, "entityType": {"S": "TABLE_MIGRATION"},
     "tm": {"S": "COMPLETE"}})
"#;

/// Reads with boto3 what `DynamoDbLeaseStore` wrote and checks Java's names and types.
const CHECK_RUST_ITEMS: &str = r#"
import sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
table = sys.argv[2]
def get(key):
    item = ddb.get_item(TableName=table, Key={"leaseKey": {"S": key}}, ConsistentRead=True)["Item"]
    return item
def kinds(item):
    return {name: next(iter(value)) for name, value in item.items()}

worker = get("rust-worker-1")
assert worker["entityType"] == {"S": "WORKER_METRIC_STATS"}, worker
types = kinds(worker)
for name, kind in {"lut": "N", "sts": "M", "opr": "M", "sup": "N", "slu": "N", "hbc": "N"}.items():
    assert types[name] == kind, (name, worker)
assert worker["lut"] == {"N": "1700000100"}, worker
assert worker["slu"] == {"N": "1700000100"}, worker
assert worker["sup"] == {"N": "1"}, worker
assert [float(v["N"]) for v in worker["sts"]["M"]["C"]["L"]] == [30.0, 35.5], worker
assert [float(v["N"]) for v in worker["opr"]["M"]["C"]["L"]] == [100.0], worker
assert worker["ag"] == {"N": "1"} and worker["drn"] == {"BOOL": True}, worker

lock = get("Leader")
assert lock["entityType"] == {"S": "LEADER"}, lock
assert lock["ownerName"] == {"S": "rust-worker-1"}, lock
assert lock["leaseDuration"] == {"S": "10000"}, lock
assert lock["recordVersionNumber"] == {"S": "a2b3c4"}, lock
assert lock["successor"] == {"S": "rust-worker-2"}, lock

migration = get("Migration3.0")
assert migration["entityType"] == {"S": "CLIENT_VERSION_MIGRATION"}, migration
assert migration["cv"] == {"S": "CLIENT_VERSION_3X"}, migration
assert migration["mb"] == {"S": "rust-worker-1"}, migration
assert migration["mts"] == {"N": "1700000100000"}, migration
assert migration["h"] == {"L": [{"M": {"cv": {"S": "CLIENT_VERSION_UPGRADE_FROM_2X"},
                                       "mb": {"S": "rust-worker-2"},
                                       "mts": {"N": "1700000000000"}}}]}, migration

assigned = get("shardId-000000000000")
assert assigned["entityType"] == {"S": "LEASE"}, assigned
assert assigned["leaseOwner"] == {"S": "rust-worker-2"}, assigned
assert assigned["leaseCounter"] == {"N": "1"}, assigned
assert assigned["ownerSwitchesSinceCheckpoint"] == {"N": "1"}, assigned
assert assigned["checkpoint"] == {"S": "TRIM_HORIZON"}, assigned
assert assigned["checkpointSubSequenceNumber"] == {"N": "0"}, assigned
assert "checkpointOwner" not in assigned, assigned

handing = get("shardId-000000000001")
assert handing["leaseOwner"] == {"S": "rust-worker-2"}, handing
assert handing["checkpointOwner"] == {"S": "rust-worker-1"}, handing
assert handing["leaseCounter"] == {"N": "1"}, handing

by_owner = ddb.query(TableName=table, IndexName="LeaseOwnerToLeaseKeyIndex",
                     KeyConditionExpression="leaseOwner = :o",
                     ExpressionAttributeValues={":o": {"S": "rust-worker-2"}})["Items"]
assert sorted(i["leaseKey"]["S"] for i in by_owner) == \
    ["shardId-000000000000", "shardId-000000000001"], by_owner
print("java layout ok")
"#;

/// Runs one of the scripts above with boto3; panics with its output when it fails.
async fn boto3(script: &'static str, endpoint: &str, table: &str) {
    let env = tokio::task::spawn_blocking(python_env).await.unwrap();
    let output = tokio::process::Command::new(env.python())
        .args(["-c", script, endpoint, table])
        .output()
        .await
        .expect("running python");
    assert!(
        output.status.success(),
        "boto3 script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn reads_a_java_table(endpoint: &str) {
    let table = unique_name("java35");
    boto3(WRITE_JAVA_TABLE, endpoint, &table).await;
    let store = DynamoDbLeaseStore::new(dynamodb_client(endpoint), table, TableConfig::default());
    store.initialize().await.unwrap();
    let mut snapshot = store.scan_table().await.unwrap();
    snapshot
        .leases
        .sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
    snapshot
        .workers
        .sort_by(|a, b| a.worker_id.cmp(&b.worker_id));

    let mut processing = Lease::new(
        "shardId-000000000000",
        StoredCheckpoint {
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            sub_sequence_number: 3,
        },
    );
    processing.lease_counter = 42;
    processing.lease_owner = Some("java-worker-1".into());
    processing.owner_switches_since_checkpoint = 1;
    processing.throughput_kbps = Some(12.5);
    processing.hash_key_range =
        Some(("0".into(), "170141183460469231731687303715884105727".into()));
    processing.child_shard_ids = BTreeSet::from(["shardId-000000000002".to_owned()]);
    let mut handing = Lease::new(
        "shardId-000000000001",
        StoredCheckpoint::new("TRIM_HORIZON"),
    );
    handing.lease_counter = 7;
    handing.lease_owner = Some("java-worker-2".into());
    handing.checkpoint_owner = Some("java-worker-1".into());
    handing.parent_shard_ids = BTreeSet::from(["shardId-000000000009".to_owned()]);
    assert_eq!(snapshot.leases, [processing, handing]);

    let cpu = |values: &[f64]| BTreeMap::from([(METRIC_CPU.to_owned(), values.to_vec())]);
    let java_worker = WorkerMetrics {
        worker_id: "java-worker-1".into(),
        last_update_secs: 1_700_000_030,
        stats: cpu(&[41.5, -1.0, 42.0]),
        operating_range: cpu(&[100.0]),
        heartbeat: None,
        assignment_generation: 0,
        draining: false,
    };
    let idle_worker = WorkerMetrics {
        worker_id: "java-worker-2".into(),
        last_update_secs: 1_700_000_031,
        ..WorkerMetrics::default()
    };
    assert_eq!(snapshot.workers, [java_worker.clone(), idle_worker]);
    assert!(snapshot.workers[0].is_valid() && !snapshot.workers[0].has_failing_metric());
    assert!(
        snapshot.workers[1].is_valid(),
        "no metrics: balanced by throughput"
    );

    assert_eq!(
        snapshot.leader,
        Some(LeaderLock {
            owner: "java-worker-1".into(),
            lease_duration_ms: 120_000,
            record_version: "4f1c9a52-0d8e-4b8e-9d4e-2f0f6c1d2e3a".into(),
            successor: None,
            liveness_by_heartbeat: false,
            fleet: Vec::new(),
        })
    );
    let history = |cv: &str, mts: u64| MigrationHistoryEntry {
        client_version: cv.into(),
        modified_by: "java-worker-2".into(),
        modified_at_ms: mts,
    };
    assert_eq!(
        snapshot.migration,
        Some(MigrationState {
            client_version: "CLIENT_VERSION_3X".into(),
            modified_by: "java-worker-1".into(),
            modified_at_ms: 1_700_000_000_000,
            history: vec![
                history("CLIENT_VERSION_3X_WITH_ROLLBACK", 1_699_999_990_000),
                history("CLIENT_VERSION_UPGRADE_FROM_2X", 1_699_999_980_000),
            ],
        })
    );

    // The single reads agree with the scan, and the owner index finds Java's leases.
    assert_eq!(
        store
            .get_worker_metrics(&["java-worker-1".into()])
            .await
            .unwrap(),
        [java_worker]
    );
    assert_eq!(store.get_leader_lock().await.unwrap(), snapshot.leader);
    assert_eq!(
        store.get_migration_state().await.unwrap(),
        snapshot.migration
    );
    assert_eq!(
        store.lease_keys_of_owner("java-worker-2").await.unwrap(),
        ["shardId-000000000001"]
    );
    assert_eq!(store.list_leases().await.unwrap().len(), 2);
}

async fn writes_what_java_reads(endpoint: &str) {
    let table = unique_name("rust35");
    let store = DynamoDbLeaseStore::new(
        dynamodb_client(endpoint),
        table.clone(),
        TableConfig::default(),
    );
    store.initialize().await.unwrap();
    let mut metrics = WorkerMetrics::new("rust-worker-1");
    metrics.last_update_secs = 1_700_000_100;
    metrics.stats.insert(METRIC_CPU.into(), vec![30.0, 35.5]);
    metrics
        .operating_range
        .insert(METRIC_CPU.into(), vec![100.0]);
    store.report_worker_metrics(&metrics).await.unwrap();
    store.notify_assignment("rust-worker-1").await.unwrap();
    assert!(store
        .set_worker_draining("rust-worker-1", true)
        .await
        .unwrap());
    let lock = LeaderLock {
        owner: "rust-worker-1".into(),
        lease_duration_ms: 10_000,
        record_version: "a2b3c4".into(),
        successor: Some("rust-worker-2".into()),
        liveness_by_heartbeat: true,
        fleet: Vec::new(),
    };
    assert!(store.acquire_leader_lock(&lock, None).await.unwrap());
    let upgrading = MigrationState {
        client_version: "CLIENT_VERSION_UPGRADE_FROM_2X".into(),
        modified_by: "rust-worker-2".into(),
        modified_at_ms: 1_700_000_000_000,
        history: Vec::new(),
    };
    assert!(store.put_migration_state(&upgrading, None).await.unwrap());
    let upgraded = MigrationState {
        client_version: "CLIENT_VERSION_3X".into(),
        modified_by: "rust-worker-1".into(),
        modified_at_ms: 1_700_000_100_000,
        history: vec![MigrationHistoryEntry {
            client_version: upgrading.client_version.clone(),
            modified_by: upgrading.modified_by.clone(),
            modified_at_ms: upgrading.modified_at_ms,
        }],
    };
    assert!(store
        .put_migration_state(&upgraded, Some("CLIENT_VERSION_UPGRADE_FROM_2X"))
        .await
        .unwrap());
    let assigned = Lease::new(
        "shardId-000000000000",
        StoredCheckpoint::new("TRIM_HORIZON"),
    );
    assert!(store.create_lease_if_absent(&assigned).await.unwrap());
    assert!(store
        .assign_lease(&assigned, "rust-worker-2")
        .await
        .unwrap());
    let handed = Lease::new(
        "shardId-000000000001",
        StoredCheckpoint::new("TRIM_HORIZON"),
    );
    assert!(store.create_lease_if_absent(&handed).await.unwrap());
    assert!(store.assign_lease(&handed, "rust-worker-1").await.unwrap());
    let owned = store.get_lease(&handed.lease_key).await.unwrap().unwrap();
    assert!(store.start_handoff(&owned, "rust-worker-2").await.unwrap());
    boto3(CHECK_RUST_ITEMS, endpoint, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_layout_both_ways_on_the_emulator() {
    let emulator = start_emulator().await;
    reads_a_java_table(&emulator.endpoint_url()).await;
    writes_what_java_reads(&emulator.endpoint_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_layout_both_ways_on_moto() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    reads_a_java_table(moto.endpoint()).await;
    writes_what_java_reads(moto.endpoint()).await;
}
