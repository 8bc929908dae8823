//! The KCL 3 leader's loop on DynamoDB (the emulator and `moto_server`), through the real SDK:
//! heartbeats read with BatchGet, rounds from scans, a dead worker's leases assigned, a
//! drained worker's leases handed off, receivers notified.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{dynamodb_client, unique_name};
use kcl_lease::{
    AssignmentStrategy, DynamoDbLeaseStore, Lease, LeaseAssignmentManager, LeaseConfig, LeaseStore,
    StoredCheckpoint, TableConfig, WorkerMetrics,
};

const STEP: Duration = Duration::from_millis(100);
/// Steps after which a scenario that has not reached its state fails.
const MAX_STEPS: usize = 300;

async fn report(store: &DynamoDbLeaseStore, worker: &str) -> WorkerMetrics {
    let mut metrics = WorkerMetrics::new(worker);
    metrics.last_update_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    store.report_worker_metrics(&metrics).await.unwrap()
}

async fn leases_of(store: &DynamoDbLeaseStore, owner: &str) -> Vec<Lease> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.lease_owner.as_deref() == Some(owner))
        .collect()
}

/// Steps the fleet (the `reporting` workers report, the leader ticks) until `done` holds.
async fn step_until(
    store: &DynamoDbLeaseStore,
    leader: &mut LeaseAssignmentManager,
    reporting: &[&str],
    what: &str,
    mut done: impl FnMut(&LeaseAssignmentManager) -> bool,
) {
    for _ in 0..MAX_STEPS {
        for worker in reporting {
            report(store, worker).await;
        }
        leader.tick_as_leader().await.unwrap();
        if done(leader) {
            return;
        }
        tokio::time::sleep(STEP).await;
    }
    panic!("the fleet never reached: {what}");
}

async fn scenario(store: Arc<DynamoDbLeaseStore>) {
    store.initialize().await.unwrap();
    for owner in ["leader", "a", "b"] {
        for i in 0..2 {
            let mut lease = Lease::new(
                format!("shardId-{owner}-{i}"),
                StoredCheckpoint::new("TRIM_HORIZON"),
            );
            lease.lease_owner = Some(owner.to_owned());
            assert!(store.create_lease_if_absent(&lease).await.unwrap());
        }
    }
    let mut config = LeaseConfig::with_failover_time(Duration::from_secs(2));
    config.coordination.strategy = AssignmentStrategy::LeaseCount;
    config.coordination.report_interval = STEP;
    config.coordination.assignment_interval = Duration::from_secs(3);
    let mut leader = LeaseAssignmentManager::new(
        Arc::clone(&store) as Arc<dyn LeaseStore>,
        "leader",
        config,
        Arc::new(|_: &Lease| true),
    );
    let everyone = ["leader", "a", "b"];
    step_until(&store, &mut leader, &everyone, "a first round", |m| {
        m.rounds() >= 1
    })
    .await;
    assert_eq!(leader.live_workers(), vec!["a", "b", "leader"]);
    assert_eq!(leader.last_round().unwrap().orphaned, 0);
    assert_eq!(
        leases_of(&store, "b").await.len(),
        2,
        "a balanced fleet is left alone"
    );
    let before = report(&store, "a").await.assignment_generation;

    // b stops reporting: judged dead after the failover time, its leases assigned in the
    // same step.
    step_until(
        &store,
        &mut leader,
        &["leader", "a"],
        "b judged dead",
        |m| !m.live_workers().contains(&"b".to_owned()),
    )
    .await;
    assert!(leases_of(&store, "b").await.is_empty());
    assert_eq!(
        leases_of(&store, "a").await.len() + leases_of(&store, "leader").await.len(),
        6
    );
    let notified = store
        .get_worker_metrics(&["a".to_owned(), "leader".to_owned()])
        .await
        .unwrap()
        .iter()
        .map(|w| w.assignment_generation)
        .sum::<u64>();
    assert!(notified > before, "the receivers were told to look");

    // a is drained: the next round hands its leases off (checkpointOwner = a).
    assert!(store.set_worker_draining("a", true).await.unwrap());
    let handed_off = |store: Arc<DynamoDbLeaseStore>| async move {
        store
            .list_leases()
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.checkpoint_owner.as_deref() == Some("a"))
            .count()
    };
    let held_by_a = leases_of(&store, "a").await.len();
    let mut rounds = leader.rounds();
    for _ in 0..MAX_STEPS {
        report(&store, "leader").await;
        report(&store, "a").await;
        leader.tick_as_leader().await.unwrap();
        if leader.rounds() > rounds {
            rounds = leader.rounds();
            if handed_off(Arc::clone(&store)).await == held_by_a {
                break;
            }
        }
        tokio::time::sleep(STEP).await;
    }
    let leases = store.list_leases().await.unwrap();
    assert_eq!(
        handed_off(Arc::clone(&store)).await,
        held_by_a,
        "{leases:?}"
    );
    for lease in leases.iter().filter(|l| l.checkpoint_owner.is_some()) {
        assert_eq!(lease.lease_owner.as_deref(), Some("leader"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_assigns_and_hands_off_on_the_emulator() {
    let emulator = kcl_integration_tests::start_emulator().await;
    let store = DynamoDbLeaseStore::new(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("leases"),
        TableConfig::default(),
    );
    scenario(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_assigns_and_hands_off_on_moto() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let store = DynamoDbLeaseStore::new(
        dynamodb_client(moto.endpoint()),
        unique_name("leases"),
        TableConfig::default(),
    );
    scenario(Arc::new(store)).await;
}
