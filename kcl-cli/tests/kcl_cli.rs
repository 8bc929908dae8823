//! The `kcl` binary against the emulator: on lease tables written by a worker of this library
//! and on Java KCL 3.5-layout items written with boto3; a fenced reset under a running worker.

use std::sync::Arc;
use std::time::Duration;

use kcl_integration_tests::kcl::{
    fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::python_env;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};
use serde_json::Value;

/// What a run of `kcl` printed.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "kcl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("{err}: {}", self.stdout))
    }
}

/// Runs `kcl --endpoint <endpoint> <args>` with test credentials.
async fn kcl(endpoint: &str, args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kcl"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .await
        .expect("running kcl");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn epoch_seconds_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A worker processes batches A and B and stops; batch C arrives after. Every subcommand then
/// reads the table it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subcommands_on_a_table_written_by_a_worker() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("ops");
    let app = unique_name("ops-app");
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "a", 100).await;
    // Records of A arrived before this time, records of B after it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = epoch_seconds_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    put_records(&kinesis, &stream, "b", 100).await;

    let store = lease_store(dynamodb_client(&endpoint), app.clone());
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        &app,
        &stream,
        kinesis.clone(),
        Arc::clone(&store),
        Recorder::factory(Arc::clone(&journal)),
        "w1",
    )
    // The 2.x protocol renews every lease, which is what the renewal ages below sample; a
    // KCL 3 worker keeps its leases by its heartbeat (the drain test covers KCL 3 tables).
    .coordination_mode(kcl_core::CoordinationMode::Kcl2)
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    eventually("A and B processed", || async {
        (journal.count() >= 200).then_some(())
    })
    .await;
    // The worker still runs: leases shows its leases and sees them renewed.
    let held = kcl(&endpoint, &["leases", &app, "--sample", "2s", "--json"])
        .await
        .json();
    let leases = held["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 2, "{held}");
    for lease in leases {
        assert_eq!(lease["owner"], "w1", "{lease}");
        assert!(lease["checkpoint"]["sequenceNumber"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit()));
        assert_eq!(lease["lastRenewalAgeIsLowerBound"], false, "{lease}");
    }
    assert!(held["leader"].is_null());
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    put_records(&kinesis, &stream, "c", 30).await;

    // Table form: one row per lease, ages as lower bounds of a one-scan sample.
    let text = kcl(&endpoint, &["leases", &app, "--sample", "0s"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("SHARD"), "{}", text.stdout);
    assert!(text.stdout.contains("shardId-000000000000"));
    assert!(text.stdout.contains("shardId-000000000001"));

    let lag = kcl(&endpoint, &["lag", &app, "--stream", &stream, "--json"])
        .await
        .json();
    assert_eq!(lag["totalRecordsBehind"], 30, "{lag}");
    assert_eq!(lag["totalIsLowerBound"], false);
    assert!(lag["stuck"].as_array().unwrap().is_empty(), "{lag}");
    let stuck = kcl(
        &endpoint,
        &[
            "lag",
            &app,
            "--stream",
            &stream,
            "--stuck-after",
            "0ms",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(stuck["stuck"].as_array().unwrap().len(), 2, "{stuck}");
    let text = kcl(&endpoint, &["lag", &app, "--stream", &stream]).await;
    assert!(
        text.stdout.contains("TOTAL 30 records behind"),
        "{}",
        text.stdout
    );
    assert!(
        kcl(&endpoint, &["lag", &app])
            .await
            .stderr
            .contains("--stream"),
        "a single-stream table needs --stream"
    );

    let frame = kcl(&endpoint, &["fleet", &app, "--stream", &stream, "--once"]).await;
    assert_eq!(frame.code, 0, "{}", frame.stderr);
    let lines: Vec<&str> = frame.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("kcl fleet {app}")),
        "{}",
        frame.stdout
    );
    assert!(lines[0].contains("2 leases"), "{}", frame.stdout);
    assert!(lines[0].contains("leader none"), "{}", frame.stdout);
    assert!(lines[2].starts_with("WORKER"), "{}", frame.stdout);
    // Released at shutdown: both leases unowned, 30 records behind between them.
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["(unowned)", "2", "-", "30", "-"],
        "{}",
        frame.stdout
    );
    assert!(frame.stdout.contains("Recent lease moves\n  none seen yet"));

    // Rewind to between A and B: B and C wait again, 130 records.
    let rewound = kcl(
        &endpoint,
        &[
            "checkpoint",
            "rewind",
            &app,
            "--stream",
            &stream,
            "--to",
            &between.to_string(),
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(rewound["reset"].as_array().unwrap().len(), 2, "{rewound}");
    let lag = kcl(&endpoint, &["lag", &app, "--stream", &stream, "--json"])
        .await
        .json();
    assert_eq!(lag["totalRecordsBehind"], 130, "{lag}");

    // One shard back to its start: all its records wait.
    let set = kcl(
        &endpoint,
        &[
            "checkpoint",
            "set",
            &app,
            "shardId-000000000000",
            "--to",
            "trim-horizon",
        ],
    )
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    let lease = store
        .get_lease("shardId-000000000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.checkpoint.unwrap().sequence_number, "TRIM_HORIZON");
    let lag = kcl(&endpoint, &["lag", &app, "--stream", &stream, "--json"])
        .await
        .json();
    let shard0 = lag["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["leaseKey"] == "shardId-000000000000")
        .unwrap()
        .clone();
    let on_shard0 = journal
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.shard_id == "shardId-000000000000")
        .count() as u64;
    assert!(on_shard0 > 0);
    assert!(
        shard0["recordsBehind"].as_u64().unwrap() > on_shard0,
        "{shard0}"
    );

    // Nothing to clean: every shard still exists.
    let cleanup = kcl(&endpoint, &["cleanup", &app, "--stream", &stream, "--json"])
        .await
        .json();
    assert!(
        cleanup["deleted"].as_array().unwrap().is_empty(),
        "{cleanup}"
    );
}

/// Java KCL 3.5 items, written by boto3: leases tagged LEASE (pendingCheckpointState as a
/// number), the leader lock, worker metrics, the migration state.
const JAVA_TABLE: &str = r#"
import os, sys, time, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
table = sys.argv[1]
ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                 KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}])
ddb.get_waiter("table_exists").wait(TableName=table)
def lease(key, checkpoint, owner=None, counter=7):
    item = {"leaseKey": {"S": key}, "leaseCounter": {"N": str(counter)},
            "checkpoint": {"S": checkpoint}, "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"}, "entityType": {"S": "LEASE"},
            "pendingCheckpointState": {"N": "0"}, "throughputKBps": {"N": "12.5"}}
    if owner:
        item["leaseOwner"] = {"S": owner}
    ddb.put_item(TableName=table, Item=item)
lease("shardId-000000000000", "TRIM_HORIZON", owner="java-worker-1")
lease("shardId-000000000001", "TRIM_HORIZON", owner="java-worker-2")
lease("shardId-000000000098", "49590338271490256608559692538361571095921575989136588898")
lease("shardId-000000000099", "SHARD_END")
ddb.put_item(TableName=table, Item={
    "leaseKey": {"S": "Leader"}, "entityType": {"S": "LEADER"},
    "ownerName": {"S": "java-worker-1"}, "leaseDuration": {"S": "120000"},
    "recordVersionNumber": {"S": "4f1c9a52-0d8e-4b8e-9d4e-2f0f6c1d2e3a"}})
ddb.put_item(TableName=table, Item={
    "leaseKey": {"S": "java-worker-1"}, "entityType": {"S": "WORKER_METRIC_STATS"},
    "lut": {"N": str(int(time.time()))}, "sup": {"N": "1"}, "slu": {"N": str(int(time.time()))},
    "sts": {"M": {"C": {"L": [{"N": "41.5"}, {"N": "42"}]}}},
    "opr": {"M": {"C": {"L": [{"N": "100"}]}}}})
ddb.put_item(TableName=table, Item={
    "leaseKey": {"S": "Migration3.0"}, "entityType": {"S": "CLIENT_VERSION_MIGRATION"},
    "cv": {"S": "CLIENT_VERSION_3X"}, "mb": {"S": "java-worker-1"},
    "mts": {"N": str(int(time.time() * 1000))}, "h": {"L": []}})
ddb.put_item(TableName=table, Item={
    "leaseKey": {"S": "TableMigration3.5"}, "entityType": {"S": "TABLE_MIGRATION"},
    "tm": {"S": "COMPLETE"}})
ddb.create_table(TableName=table + "-not-kcl", BillingMode="PAY_PER_REQUEST",
                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_kcl3_items_and_cleanup_and_errors() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("java");
    let app = unique_name("java-app");
    create_active_stream(&kinesis, &stream, 2).await;
    let env = tokio::task::spawn_blocking(python_env).await.unwrap();
    let script = tokio::process::Command::new(env.python())
        .args(["-c", JAVA_TABLE, &app])
        .env("ENDPOINT", &endpoint)
        .output()
        .await
        .unwrap();
    assert!(
        script.status.success(),
        "{}",
        String::from_utf8_lossy(&script.stderr)
    );

    let listed = kcl(&endpoint, &["leases", &app, "--sample", "0s", "--json"])
        .await
        .json();
    let keys: Vec<&str> = listed["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["leaseKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000098",
            "shardId-000000000099"
        ]
    );
    assert_eq!(listed["leases"][0]["owner"], "java-worker-1");
    assert_eq!(listed["leases"][0]["throughputKBps"], 12.5);
    assert_eq!(listed["leader"]["owner"], "java-worker-1");
    assert_eq!(listed["leader"]["leaseDurationMillis"], 120000);
    assert_eq!(listed["workerMetrics"][0]["workerId"], "java-worker-1");
    assert_eq!(listed["workerMetrics"][0]["stats"]["C"][1], 42.0);
    assert_eq!(listed["migration"]["clientVersion"], "CLIENT_VERSION_3X");
    assert_eq!(listed["otherItems"][0]["key"], "TableMigration3.5");
    let text = kcl(&endpoint, &["leases", &app, "--sample", "0s"]).await;
    for section in [
        "Leader (KCL 3)",
        "lease counters (Java)",
        "Workers (KCL 3)",
        "C=42",
        "42%",
        "CLIENT_VERSION_3X",
    ] {
        assert!(text.stdout.contains(section), "{section}: {}", text.stdout);
    }

    let frame = kcl(&endpoint, &["fleet", &app, "--stream", &stream, "--once"]).await;
    assert_eq!(frame.code, 0, "{}", frame.stderr);
    assert!(frame
        .stdout
        .lines()
        .next()
        .unwrap()
        .ends_with("leader java-worker-1"));
    assert!(frame.stdout.contains("C=42"), "{}", frame.stdout);

    // An owned lease is not reset without --force.
    let refused = kcl(
        &endpoint,
        &[
            "checkpoint",
            "set",
            &app,
            "shardId-000000000001",
            "--to",
            "latest",
        ],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("held by java-worker-2"),
        "{}",
        refused.stderr
    );

    // Shards 98 and 99 are not in the stream: 99 ended and goes, 98 did not and stays.
    let planned = kcl(
        &endpoint,
        &["cleanup", &app, "--stream", &stream, "--dry-run", "--json"],
    )
    .await
    .json();
    assert_eq!(
        planned["deleted"],
        serde_json::json!(["shardId-000000000099"])
    );
    let cleaned = kcl(&endpoint, &["cleanup", &app, "--stream", &stream, "--json"])
        .await
        .json();
    assert_eq!(
        cleaned["deleted"],
        serde_json::json!(["shardId-000000000099"])
    );
    assert_eq!(cleaned["kept"][0]["leaseKey"], "shardId-000000000098");
    let after = kcl(&endpoint, &["leases", &app, "--sample", "0s", "--json"])
        .await
        .json();
    assert_eq!(after["leases"].as_array().unwrap().len(), 3);
    assert_eq!(
        after["leader"]["owner"], "java-worker-1",
        "other items untouched"
    );

    // Clear errors.
    let missing = kcl(&endpoint, &["leases", "no-such-app", "--sample", "0s"]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no lease table named no-such-app"),
        "{}",
        missing.stderr
    );
    let not_kcl = kcl(
        &endpoint,
        &["leases", &format!("{app}-not-kcl"), "--sample", "0s"],
    )
    .await;
    assert!(
        not_kcl
            .stderr
            .contains("is not a KCL lease table: its key is id"),
        "{}",
        not_kcl.stderr
    );
    let no_credentials = tokio::process::Command::new(env!("CARGO_BIN_EXE_kcl"))
        .args(["--endpoint", &endpoint, "leases", &app, "--sample", "0s"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_credentials.stderr);
    assert_eq!(no_credentials.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no usable AWS credentials"), "{stderr}");
}

/// `checkpoint set --force` under a running worker: the worker's processor sees the lease lost,
/// and the shard is processed again from the reset position, not from the old owner's later
/// checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_reset_fences_the_running_owner() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("fence");
    let app = unique_name("fence-app");
    create_active_stream(&kinesis, &stream, 1).await;
    put_records(&kinesis, &stream, "f", 50).await;
    let store = lease_store(dynamodb_client(&endpoint), app.clone());
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        &app,
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
    eventually("50 records processed", || async {
        (journal.count() >= 50).then_some(())
    })
    .await;
    let first_processor = journal.deliveries.lock().unwrap()[0].processor;

    let refused = kcl(
        &endpoint,
        &[
            "checkpoint",
            "set",
            &app,
            "shardId-000000000000",
            "--to",
            "trim-horizon",
        ],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("held by w1"), "{}", refused.stderr);

    let forced = kcl(
        &endpoint,
        &[
            "checkpoint",
            "set",
            &app,
            "shardId-000000000000",
            "--to",
            "trim-horizon",
            "--force",
        ],
    )
    .await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stdout.contains("taken from w1"), "{}", forced.stdout);
    eventually("the owner's processor to see the lease lost", || async {
        (!journal.lost.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // New records make the old processor try to checkpoint if it still ran; the shard is
    // replayed from its start by a new processor.
    put_records(&kinesis, &stream, "g", 10).await;
    eventually("the shard replayed from TRIM_HORIZON", || async {
        let deliveries = journal.deliveries.lock().unwrap();
        let replayed = deliveries
            .iter()
            .filter(|d| d.data == "f-0" && d.processor != first_processor)
            .count();
        (replayed > 0 && deliveries.iter().any(|d| d.data == "g-9")).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert_eq!(
        journal
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.data == "f-0")
            .count(),
        2,
        "replayed exactly once more"
    );
}

/// The live view redraws: its first frame over a pipe starts with the terminal's clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_watch_draws_frames() {
    use tokio::io::AsyncReadExt;
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("watch");
    let app = unique_name("watch-app");
    create_active_stream(&kinesis, &stream, 1).await;
    lease_store(dynamodb_client(&endpoint), app.clone())
        .initialize()
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kcl"))
        .args([
            "--endpoint",
            &endpoint,
            "fleet",
            &app,
            "--stream",
            &stream,
            "--watch",
        ])
        .args(["--interval", "100ms"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while seen.matches("\x1b[H\x1b[2J").count() < 2 {
        let n = tokio::time::timeout(
            kcl_integration_tests::TEST_TIMEOUT,
            stdout.read(&mut buffer),
        )
        .await
        .expect("a frame in time")
        .unwrap();
        assert!(n > 0, "kcl fleet --watch ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    child.kill().await.unwrap();
    let first = seen.split("\x1b[H\x1b[2J").nth(1).unwrap();
    assert!(first.starts_with(&format!("kcl fleet {app}")), "{first}");
    assert!(first.contains("0 leases"), "{first}");
}

/// `kcl drain` on a KCL 3 table prepared through the lease store: the flag set and cleared,
/// the wait that ends when the worker's leases have moved (moved here by the test, playing the
/// leader, one of them through a graceful handoff), a timeout, and the clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_sets_the_flag_and_waits_for_the_leases_to_move() {
    use kcl_lease::{LeaderLock, Lease, StoredCheckpoint, WorkerMetrics};
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let app = unique_name("drain-app");
    let store = lease_store(dynamodb_client(&endpoint), app.clone());
    store.initialize().await.unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("shardId-{i:012}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let lease = Lease::new(key.as_str(), StoredCheckpoint::new("TRIM_HORIZON"));
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
        let owner = if i < 3 { "w1" } else { "w2" };
        assert!(store.assign_lease(&lease, owner).await.unwrap());
    }
    for worker in ["w1", "w2"] {
        let mut metrics = WorkerMetrics::new(worker);
        metrics.last_update_secs = epoch_seconds_now() as u64;
        store.report_worker_metrics(&metrics).await.unwrap();
    }

    // Without a leader (a KCL 2 fleet) nothing would move the leases: refused.
    let refused = kcl(&endpoint, &["drain", &app, "w1"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("no KCL 3 leader"),
        "{}",
        refused.stderr
    );
    let lock = LeaderLock {
        owner: "w2".to_owned(),
        lease_duration_ms: 10_000,
        record_version: "v1".to_owned(),
        successor: Some("w1".to_owned()),
        liveness_by_heartbeat: true,
        fleet: Vec::new(),
    };
    assert!(store.acquire_leader_lock(&lock, None).await.unwrap());
    let draining = |worker: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .get_worker_metrics(&[worker.to_owned()])
                .await
                .unwrap()[0]
                .draining
        }
    };
    assert!(!draining("w1").await);

    let ghost = kcl(&endpoint, &["drain", &app, "ghost"]).await;
    assert_eq!(ghost.code, 1);
    assert!(ghost.stderr.contains("no worker ghost"), "{}", ghost.stderr);

    let set = kcl(&endpoint, &["drain", &app, "w1", "--no-wait", "--json"])
        .await
        .json();
    assert_eq!(set["draining"], true);
    assert_eq!(set["leasesHeld"].as_array().unwrap().len(), 3, "{set}");
    assert!(draining("w1").await);
    let shown = kcl(&endpoint, &["leases", &app, "--sample", "0s"]).await;
    for expected in ["SUCCESSOR", "w1", "heartbeat", "DRAINING", "yes"] {
        assert!(
            shown.stdout.contains(expected),
            "{expected}: {}",
            shown.stdout
        );
    }
    let undone = kcl(&endpoint, &["drain", &app, "w1", "--undo"]).await;
    assert_eq!(undone.code, 0, "{}", undone.stderr);
    assert!(
        undone.stdout.contains("no longer draining"),
        "{}",
        undone.stdout
    );
    assert!(!draining("w1").await);

    // Waiting: it returns once w1 holds nothing, counting a lease it is still handing off.
    let waiting = tokio::spawn({
        let endpoint = endpoint.clone();
        let app = app.clone();
        async move { kcl(&endpoint, &["drain", &app, "w1", "--timeout", "2m"]).await }
    });
    eventually("the drain flag set", || async {
        draining("w1").await.then_some(())
    })
    .await;
    for key in &keys[..2] {
        let lease = store.get_lease(key).await.unwrap().unwrap();
        assert!(store.assign_lease(&lease, "w2").await.unwrap());
    }
    let last = store.get_lease(&keys[2]).await.unwrap().unwrap();
    assert!(store.start_handoff(&last, "w2").await.unwrap());
    // w1 no longer owns it, but still processes it until it checkpoints and completes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "returned during the handoff");
    let handing = store.get_lease(&keys[2]).await.unwrap().unwrap();
    assert!(store.complete_handoff(&handing).await.unwrap());
    let drained = waiting.await.unwrap();
    assert_eq!(drained.code, 0, "{}\n{}", drained.stdout, drained.stderr);
    assert!(
        drained
            .stdout
            .contains("w1 is draining: the leader hands its 3 lease(s)"),
        "{}",
        drained.stdout
    );
    assert!(
        drained.stdout.contains("w1 holds no leases"),
        "{}",
        drained.stdout
    );
    assert!(store.lease_keys_of_owner("w1").await.unwrap().is_empty());

    // Nobody moves w2's leases here: the wait gives up, says so and fails.
    let stuck = kcl(&endpoint, &["drain", &app, "w2", "--timeout", "1s"]).await;
    assert_eq!(stuck.code, 1);
    assert!(
        stuck.stdout.contains("w2 still holds 4 lease(s)"),
        "{}",
        stuck.stdout
    );
    assert!(draining("w2").await, "the flag stays set");
}
