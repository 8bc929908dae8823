//! The emulator's container image, run through testcontainers: a two-worker KCL fleet against
//! it, durability of streams and lease tables across a container restart on the same volume,
//! isolation of two containers, and a clear failure when there is no Docker engine.
//!
//! These tests need a Docker engine; without one they fail (they never skip). The image
//! `kcl-emulator:<version>` is built on first use by `kcl-emulator/docker/build-image.sh`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use kcl_core::LeaseStore;
use kcl_emulator::testcontainers::{KclEmulator, KclEmulatorContainer, DATA_DIR};
use kcl_integration_tests::container::{
    docker_engine_api_version, health_status, prepare, volume_exists, DockerVolume,
};
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::{create_active_stream, eventually, unique_name};
use kcl_lease::Lease;
use testcontainers::core::Mount;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};

async fn start(
    image: impl Into<testcontainers::ContainerRequest<KclEmulator>>,
) -> ContainerAsync<KclEmulator> {
    prepare();
    image
        .into()
        .start()
        .await
        .expect("the kcl-emulator container starts")
}

async fn initialized_lease_store(
    container: &ContainerAsync<KclEmulator>,
    table: &str,
) -> Arc<dyn LeaseStore> {
    let store = lease_store(container.dynamodb_client().await.unwrap(), table);
    store.initialize().await.unwrap();
    store
}

async fn owners(store: &Arc<dyn LeaseStore>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for lease in store.list_leases().await.unwrap() {
        if let Some(owner) = lease.lease_owner {
            *counts.entry(owner).or_insert(0) += 1;
        }
    }
    counts
}

async fn sorted_leases(store: &Arc<dyn LeaseStore>) -> Vec<Lease> {
    let mut leases = store.list_leases().await.unwrap();
    leases.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
    leases
}

/// Every record of `stream`, per shard, as (sequence number, payload), read from TRIM_HORIZON.
async fn read_all(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> BTreeMap<String, Vec<(String, String)>> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let mut records = Vec::new();
        loop {
            let out = kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            records.extend(out.records().iter().map(|r| {
                (
                    r.sequence_number().to_owned(),
                    String::from_utf8_lossy(r.data().as_ref()).into_owned(),
                )
            }));
            iterator = out.next_shard_iterator.unwrap();
        }
        all.insert(shard.shard_id().to_owned(), records);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_worker_fleet_processes_every_record_in_order() {
    let started = Instant::now();
    let container = start(KclEmulator::default()).await;
    eprintln!("container up in {:?}", started.elapsed());
    let kinesis = container.kinesis_client().await.unwrap();
    let stream = unique_name("container-fleet");
    create_active_stream(&kinesis, &stream, 4).await;
    let store = initialized_lease_store(&container, &unique_name("container-fleet-app")).await;

    let journal = Arc::new(Journal::default());
    let worker = |id: &str| {
        fast_builder(
            "container-fleet-app",
            &stream,
            kinesis.clone(),
            Arc::clone(&store),
            Recorder::factory(Arc::clone(&journal)),
            id,
        )
        .build()
        .unwrap()
    };
    let (w1, w2) = (worker("w1"), worker("w2"));
    let (h1, h2) = (w1.handle(), w2.handle());
    let (t1, t2) = (spawn(w1), spawn(w2));

    put_records(&kinesis, &stream, "a", 2000).await;
    eventually("the two workers to hold two shards each", || async {
        let counts = owners(&store).await;
        (counts.len() == 2 && counts.values().all(|n| *n == 2)).then_some(())
    })
    .await;
    put_records(&kinesis, &stream, "b", 2000).await;
    let expected: HashSet<String> = (0..2000)
        .flat_map(|i| [format!("a-{i}"), format!("b-{i}")])
        .collect();
    eventually("all 4000 records processed", || async {
        expected.is_subset(&journal.payloads()).then_some(())
    })
    .await;

    assert!(h1.shutdown().await, "w1 shuts down gracefully");
    assert!(h2.shutdown().await, "w2 shuts down gracefully");
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();

    assert_ordered_per_shard(&journal);
    assert_eq!(journal.by_shard().len(), 4, "every shard delivered records");
    // What the workers saw per shard is the stream's content, in the stream's order.
    let stored = read_all(&kinesis, &stream).await;
    let seen = journal.by_shard();
    for (shard, records) in &stored {
        let payloads: Vec<&String> = records.iter().map(|(_, data)| data).collect();
        // A shard that changed owner is redelivered from its checkpoint (at least once):
        // compare first deliveries.
        let mut first_seen = HashSet::new();
        let delivered: Vec<&String> = seen[shard]
            .iter()
            .filter(|data| first_seen.insert(*data))
            .collect();
        assert_eq!(delivered, payloads, "{shard} delivered in order, complete");
    }
    // Each lease's checkpoint is the last record of its shard.
    for lease in store.list_leases().await.unwrap() {
        let last = &stored[&lease.lease_key].last().unwrap().0;
        assert_eq!(
            &lease.checkpoint.as_ref().unwrap().sequence_number,
            last,
            "{}",
            lease.lease_key
        );
        assert_eq!(lease.lease_owner, None, "released on shutdown");
    }

    // The image's HEALTHCHECK (`kcl-emulator health-check`) passes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = health_status(container.id());
        if status == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "health status {status:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_lease_tables_survive_a_restart_on_the_same_volume() {
    // Declared first, dropped last: after both containers are removed.
    let volume = DockerVolume::create("kcl-container-test");
    let image = || KclEmulator::default().with_mount(Mount::volume_mount(volume.name(), DATA_DIR));
    let stream = unique_name("durable");
    let table = unique_name("durable-app");

    let first = start(image()).await;
    let kinesis = first.kinesis_client().await.unwrap();
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "before", 500).await;
    // A worker processes everything and leaves checkpoints in the lease table.
    let store = initialized_lease_store(&first, &table).await;
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "durable-app",
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
    eventually("500 records processed", || async {
        (journal.count() >= 500).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    let records_before = read_all(&kinesis, &stream).await;
    let leases_before = sorted_leases(&store).await;
    assert_eq!(leases_before.len(), 2);
    assert!(leases_before.iter().all(|lease| lease.checkpoint.is_some()));

    // SIGTERM: the emulator flushes and exits 0 well before docker's 10 s kill.
    let stopping = Instant::now();
    first.stop().await.unwrap();
    let stop_time = stopping.elapsed();
    assert_eq!(first.exit_code().await.unwrap(), Some(0), "graceful exit");
    assert!(
        stop_time < Duration::from_secs(8),
        "stopped in {stop_time:?}"
    );
    drop(first);
    assert!(
        volume_exists(volume.name()),
        "the volume outlives the container"
    );

    let second = start(image()).await;
    let kinesis = second.kinesis_client().await.unwrap();
    assert_eq!(
        read_all(&kinesis, &stream).await,
        records_before,
        "records survive"
    );
    let store = initialized_lease_store(&second, &table).await;
    assert_eq!(sorted_leases(&store).await, leases_before, "leases survive");

    // A new worker resumes from the recovered checkpoints: only new records arrive.
    put_records(&kinesis, &stream, "after", 100).await;
    let again = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "durable-app",
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
    eventually("the 100 new records", || async {
        (again.count() >= 100).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert!(
        again.payloads().iter().all(|p| p.starts_with("after-")),
        "nothing before the checkpoints is processed again"
    );

    let name = volume.name().to_owned();
    drop(second);
    drop(volume);
    assert!(!volume_exists(&name), "the test volume is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_do_not_share_anything() {
    let (a, b) = tokio::join!(
        start(KclEmulator::default().in_memory()),
        start(KclEmulator::default().in_memory())
    );
    let (a_url, b_url) = (
        a.endpoint_url().await.unwrap(),
        b.endpoint_url().await.unwrap(),
    );
    assert_ne!(a_url, b_url);
    let (a_kinesis, b_kinesis) = (
        a.kinesis_client().await.unwrap(),
        b.kinesis_client().await.unwrap(),
    );

    create_active_stream(&a_kinesis, "only-in-a", 1).await;
    a_kinesis
        .put_record()
        .stream_name("only-in-a")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    let b_streams = b_kinesis.list_streams().send().await.unwrap();
    assert!(b_streams.stream_names().is_empty(), "{b_streams:?}");
    let err = b_kinesis
        .describe_stream_summary()
        .stream_name("only-in-a")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error().is_resource_not_found_exception(),
        "the stream is unknown in b"
    );

    // The same name in both: independent streams.
    create_active_stream(&b_kinesis, "only-in-a", 3).await;
    let shards = |client: aws_sdk_kinesis::Client| async move {
        client
            .list_shards()
            .stream_name("only-in-a")
            .send()
            .await
            .unwrap()
            .shards()
            .len()
    };
    assert_eq!(shards(a_kinesis.clone()).await, 1);
    assert_eq!(shards(b_kinesis.clone()).await, 3);

    // DynamoDB too.
    let a_store = initialized_lease_store(&a, "lease-table").await;
    a_store
        .create_lease_if_absent(&Lease::new(
            "shardId-000000000000",
            kcl_lease::StoredCheckpoint::new("TRIM_HORIZON"),
        ))
        .await
        .unwrap();
    let b_tables = b
        .dynamodb_client()
        .await
        .unwrap()
        .list_tables()
        .send()
        .await
        .unwrap();
    assert!(b_tables.table_names().is_empty(), "{b_tables:?}");
    assert_eq!(a_store.list_leases().await.unwrap().len(), 1);
}

#[test]
fn a_missing_docker_engine_fails_with_a_message_naming_it() {
    let err = docker_engine_api_version(Some("unix:///nonexistent/docker.sock"))
        .expect_err("no engine listens there");
    assert!(err.contains("Docker engine"), "{err}");
    assert!(err.contains("docker"), "{err}");
    // And with the real engine the same check passes (these tests need one).
    let version = docker_engine_api_version(None).unwrap_or_else(|err| panic!("{err}"));
    assert!(version.starts_with("1."), "{version}");
}
