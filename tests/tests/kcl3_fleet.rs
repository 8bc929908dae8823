//! Three workers in KCL 3 mode on the emulator: the leader assigns and balances the leases; a
//! leader killed without a word is replaced and its leases are processed again; a rolling
//! restart (each worker stopped gracefully and started again, records flowing) processes no
//! record twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

use kcl_core::{AssignmentStrategy, CoordinationMode, LeaseStore, SchedulerHandle, WorkerStatus};
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, fast_builder, fast_coordination, lease_store, put_records, spawn,
    Journal, Recorder,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

const SHARDS: usize = 12;

async fn owners(store: &Arc<dyn LeaseStore>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in store.list_leases().await.unwrap() {
        if let Some(owner) = lease.lease_owner {
            *counts.entry(owner).or_insert(0) += 1;
        }
    }
    counts
}

/// Whether `ids` hold every lease, 4 each.
async fn balanced(store: &Arc<dyn LeaseStore>, ids: &[&str]) -> bool {
    let counts = owners(store).await;
    counts.len() == ids.len()
        && ids
            .iter()
            .all(|id| counts.get(*id) == Some(&(SHARDS / ids.len())))
}

struct Worker {
    handle: SchedulerHandle,
    status: WorkerStatus,
    task: tokio::task::JoinHandle<kcl_core::Result<()>>,
    scans: ScanCounter,
}

/// Counts the Scan requests one worker's DynamoDB client sends.
#[derive(Debug, Clone, Default)]
struct ScanCounter(Arc<AtomicUsize>);

impl ScanCounter {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for ScanCounter {
    fn name(&self) -> &'static str {
        "ScanCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target");
        if target.is_some_and(|target| target.ends_with(".Scan")) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_assigns_balances_and_is_replaced_when_killed() {
    fleet(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_processes_no_record_twice() {
    fleet(true).await;
}

/// Starts three workers, checks the leader's assignment and a leader kill, then, with
/// `rolling`, a rolling restart.
async fn fleet(rolling: bool) {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("kcl3");
    create_active_stream(&kinesis, &stream, SHARDS as i32).await;
    let table = unique_name("kcl3-app");
    let store = lease_store(dynamodb_client(&emulator.endpoint_url()), table.clone());
    store.initialize().await.unwrap();
    let journal = Arc::new(Journal::default());
    // Workers on one host report the same CPU figures, which the utilisation strategy rightly
    // calls balanced whatever their lease counts: balance by count to see the leader balance.
    let mut coordination = fast_coordination();
    coordination.mode = CoordinationMode::Kcl3;
    coordination.strategy = AssignmentStrategy::LeaseCount;
    let endpoint = emulator.endpoint_url();
    let start = |id: &str| {
        // Each worker has its own client, so its scans are counted apart.
        let scans = ScanCounter::default();
        let client = dynamodb_client(&endpoint);
        let counted = aws_sdk_dynamodb::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(scans.clone())
                .build(),
        );
        let scheduler = fast_builder(
            &table,
            &stream,
            kinesis.clone(),
            lease_store(counted, table.clone()),
            Recorder::factory(Arc::clone(&journal)),
            id,
        )
        .coordination(coordination.clone())
        .build()
        .unwrap();
        Worker {
            handle: scheduler.handle(),
            status: scheduler.status(),
            task: spawn(scheduler),
            scans,
        }
    };
    let ids = ["w1", "w2", "w3"];
    let mut workers: HashMap<&str, Worker> = ids.iter().map(|id| (*id, start(id))).collect();

    // The leader assigns every lease and balances them.
    put_records(&kinesis, &stream, "a", 1200).await;
    eventually("the leader to balance 12 shards 4/4/4", || async {
        balanced(&store, &ids).await.then_some(())
    })
    .await;
    eventually("1200 records", || async {
        (journal.payloads().len() >= 1200).then_some(())
    })
    .await;
    let leader = eventually("one worker to say it leads", || async {
        let leaders: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| workers[id].status.is_leader())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await;
    let lock = store_leader(&store).await;
    assert_eq!(lock, leader, "the lock names the worker that says it leads");

    // In steady state only the leader (assignment rounds, shard sync) and its successor
    // (learning the workers) scan the table; a follower never lists it.
    let successor = eventually("the leader to name a successor", || async {
        store
            .get_leader_lock()
            .await
            .unwrap()
            .and_then(|lock| lock.successor)
    })
    .await;
    let before: HashMap<&str, usize> = ids
        .iter()
        .map(|id| (*id, workers[id].scans.count()))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for id in ids {
        let scans = workers[id].scans.count() - before[id];
        if id == leader {
            assert!(scans > 0, "the leader scans for its rounds and shard syncs");
        } else if id != successor {
            assert_eq!(scans, 0, "{id}, a follower, scanned the table");
        }
    }

    // The leader dies without a word: another worker takes the lock over and the dead
    // leader's leases are assigned and processed again.
    let dead = workers.remove(leader).unwrap();
    dead.task.abort();
    let _ = dead.task.await;
    let survivors: Vec<&str> = ids.iter().copied().filter(|id| *id != leader).collect();
    put_records(&kinesis, &stream, "b", 1200).await;
    eventually("a new leader", || async {
        let lock = store_leader(&store).await;
        (lock != leader && survivors.iter().any(|id| workers[id].status.is_leader())).then_some(())
    })
    .await;
    eventually("the survivors to hold every lease", || async {
        let counts = owners(&store).await;
        (!counts.contains_key(leader) && counts.values().sum::<usize>() == SHARDS).then_some(())
    })
    .await;
    let expected: HashSet<String> = (0..1200)
        .flat_map(|i| [format!("a-{i}"), format!("b-{i}")])
        .collect();
    eventually("every record of both rounds, none lost", || async {
        expected.is_subset(&journal.payloads()).then_some(())
    })
    .await;

    if !rolling {
        for (_, worker) in workers {
            assert!(worker.handle.shutdown().await);
            worker.task.await.unwrap().unwrap();
        }
        assert_ordered_per_shard(&journal);
        return;
    }

    // The dead worker comes back; then each worker in turn is stopped gracefully and started
    // again while records keep coming. Leases move by graceful handoffs and releases after
    // final checkpoints: nothing is processed twice.
    workers.insert(leader, start(leader));
    eventually("the fleet to balance again", || async {
        balanced(&store, &ids).await.then_some(())
    })
    .await;
    let mut round = 0;
    for id in ids {
        let worker = workers.remove(id).unwrap();
        put_records(&kinesis, &stream, &format!("c{round}"), 300).await;
        round += 1;
        assert!(worker.handle.shutdown().await, "{id} stops gracefully");
        worker.task.await.unwrap().unwrap();
        put_records(&kinesis, &stream, &format!("c{round}"), 300).await;
        round += 1;
        workers.insert(id, start(id));
        eventually("the fleet to balance after the restart", || async {
            balanced(&store, &ids).await.then_some(())
        })
        .await;
    }
    put_records(&kinesis, &stream, &format!("c{round}"), 300).await;
    round += 1;
    eventually("every record of the rolling restart", || async {
        let seen = journal
            .payloads()
            .iter()
            .filter(|d| d.starts_with('c'))
            .count();
        (seen == round * 300).then_some(())
    })
    .await;
    for (_, worker) in workers {
        assert!(worker.handle.shutdown().await);
        worker.task.await.unwrap().unwrap();
    }
    let repeated: Vec<String> = journal
        .duplicates()
        .into_iter()
        .filter(|d| d.starts_with('c'))
        .collect();
    assert!(
        repeated.is_empty(),
        "{} records processed twice in the rolling restart: {:?}; leases lost: {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(10)],
        journal.lost.lock().unwrap()
    );
    assert_ordered_per_shard(&journal);
}

/// The owner named in the leader lock ("" when there is none).
async fn store_leader(store: &Arc<dyn LeaseStore>) -> String {
    store
        .get_leader_lock()
        .await
        .unwrap()
        .map(|lock| lock.owner)
        .unwrap_or_default()
}
