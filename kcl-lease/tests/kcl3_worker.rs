//! The worker's side of KCL 3 coordination on the in-memory store, with paused time: the
//! leader is played by the test (a lock it holds, assignments it writes), so these tests need
//! no leader of this library.

use std::sync::Arc;
use std::time::Duration;

use kcl_lease::{
    CheckpointUpdate, CoordinationMode, InMemoryLeaseStore, LeaderLock, Lease, LeaseConfig,
    LeaseEvent, LeaseStore, LeaseStoreLayer, MigrationState, StoredCheckpoint, WorkerMetrics,
};
use tokio::sync::watch;

mod support;
use support::{store_with, Running};

const FAILOVER: Duration = Duration::from_secs(10);

/// A lock held by a leader the test plays, long enough that no worker takes it over.
async fn lock_held_by_test_leader(store: &InMemoryLeaseStore, by_heartbeat: bool) {
    let lock = LeaderLock {
        owner: "test-leader".into(),
        lease_duration_ms: 3_600_000,
        record_version: "version-1".into(),
        successor: None,
        liveness_by_heartbeat: by_heartbeat,
        fleet: Vec::new(),
    };
    assert!(store.acquire_leader_lock(&lock, None).await.unwrap());
}

fn start(store: &Arc<InMemoryLeaseStore>, id: &str, mode: CoordinationMode) -> Running {
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.mode = mode;
    config.coordination.disable_worker_metrics = true;
    support::start(store, id, config)
}

async fn lease(store: &InMemoryLeaseStore, key: &str) -> Lease {
    store.get_lease(key).await.unwrap().unwrap()
}

async fn assign(store: &InMemoryLeaseStore, key: &str, to: &str) {
    let current = lease(store, key).await;
    assert!(store.assign_lease(&current, to).await.unwrap());
    store.notify_assignment(to).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_worker_never_takes_leases_and_starts_those_the_leader_assigns_at_its_next_report() {
    let store = store_with(3).await;
    lock_held_by_test_leader(&store, false).await;
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(w.coordinator.held_keys().is_empty(), "workers never take");
    assert_eq!(
        w.coordinator.coordination_mode(),
        CoordinationMode::Kcl3,
        "no migration state: KCL 3"
    );
    let migration = store.get_migration_state().await.unwrap().unwrap();
    assert_eq!(migration.client_version, "CLIENT_VERSION_3X");
    let heartbeat = store.get_worker_metrics(&["w".into()]).await.unwrap()[0]
        .heartbeat
        .unwrap();
    assert!(heartbeat >= 50, "a report every 500 ms: {heartbeat}");

    assign(&store, "shardId-000000000001", "w").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.coordinator.held_keys(), ["shardId-000000000001"]);
    assert!(matches!(
        w.drain().as_slice(),
        [LeaseEvent::Gained(lease)] if lease.lease_key == "shardId-000000000001"
    ));
    assert!(!w.coordinator.is_leader());
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_heartbeat_leader_leases_are_renewed_one_by_one_with_their_throughput() {
    let store = store_with(1).await;
    lock_held_by_test_leader(&store, false).await;
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    assign(&store, "shardId-000000000000", "w").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.drain().len(), 1);
    let before = lease(&store, "shardId-000000000000").await.lease_counter;
    w.coordinator
        .record_delivered("shardId-000000000000", 10 * 1024 * 1024);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = lease(&store, "shardId-000000000000").await;
    assert!(after.lease_counter >= before + 2, "renewed per lease");
    assert!(
        after.throughput_kbps.is_some_and(|kbps| kbps > 0.0),
        "{:?}",
        after.throughput_kbps
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_a_heartbeat_leader_leases_are_kept_by_the_heartbeat_and_moves_are_noticed() {
    let store = store_with(3).await;
    lock_held_by_test_leader(&store, true).await;
    // Another worker, to receive a handoff.
    store
        .report_worker_metrics(&WorkerMetrics::new("x"))
        .await
        .unwrap();
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    for i in 0..3 {
        assign(&store, &format!("shardId-00000000000{i}"), "w").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.coordinator.held_keys().len(), 3);
    w.drain();
    let counters: Vec<u64> = {
        let mut counters = Vec::new();
        for i in 0..3 {
            counters.push(
                lease(&store, &format!("shardId-00000000000{i}"))
                    .await
                    .lease_counter,
            );
        }
        counters
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    for (i, counter) in counters.iter().enumerate() {
        let now = lease(&store, &format!("shardId-00000000000{i}")).await;
        assert_eq!(now.lease_counter, *counter, "no per-lease renewals");
    }
    assert_eq!(w.coordinator.held_keys().len(), 3, "kept by the heartbeat");

    // Throughput goes out with checkpoints.
    w.coordinator
        .record_delivered("shardId-000000000002", 4 * 1024 * 1024);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let update = CheckpointUpdate {
        checkpoint: StoredCheckpoint::new(
            "49590338271490256608559692538361571095921575989136588898",
        ),
        pending_checkpoint: None,
        pending_checkpoint_state: None,
    };
    assert!(w
        .coordinator
        .checkpoint("shardId-000000000002", &update)
        .await
        .unwrap());
    assert!(lease(&store, "shardId-000000000002")
        .await
        .throughput_kbps
        .is_some_and(|kbps| kbps > 0.0));

    // The leader moves one lease outright and starts a handoff of another: the worker notices
    // both at its next discovery, without renewing.
    let taken = lease(&store, "shardId-000000000000").await;
    assert!(store.assign_lease(&taken, "x").await.unwrap());
    let handed = lease(&store, "shardId-000000000001").await;
    assert!(store.start_handoff(&handed, "x").await.unwrap());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let events = w.drain();
    assert!(
        events.contains(&LeaseEvent::Lost("shardId-000000000000".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&LeaseEvent::HandoffRequested("shardId-000000000001".into())),
        "{events:?}"
    );
    // The old owner completes the handoff after its final checkpoint: the new owner's
    // assignment generation goes up, so it starts at once.
    let generation =
        store.get_worker_metrics(&["x".into()]).await.unwrap()[0].assignment_generation;
    assert!(w
        .coordinator
        .complete_handoff("shardId-000000000001")
        .await
        .unwrap());
    let after = store.get_worker_metrics(&["x".into()]).await.unwrap()[0].clone();
    assert_eq!(after.assignment_generation, generation + 1);
    let handed = lease(&store, "shardId-000000000001").await;
    assert_eq!(handed.lease_owner.as_deref(), Some("x"));
    assert_eq!(handed.checkpoint_owner, None);
    assert_eq!(w.coordinator.held_keys(), ["shardId-000000000002"]);
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_handed_to_a_worker_waits_for_the_old_owners_checkpoint() {
    let store = store_with(1).await;
    lock_held_by_test_leader(&store, true).await;
    assign(&store, "shardId-000000000000", "old").await;
    let current = lease(&store, "shardId-000000000000").await;
    assert!(store.start_handoff(&current, "w").await.unwrap());
    store.notify_assignment("w").await.unwrap();
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        w.coordinator.held_keys().is_empty(),
        "old owner still checkpointing"
    );
    let current = lease(&store, "shardId-000000000000").await;
    assert!(store.complete_handoff(&current).await.unwrap());
    // Not notified: found at the next report anyway, as the handoff was seen under way.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.coordinator.held_keys(), ["shardId-000000000000"]);
    assert_eq!(w.drain().len(), 1);
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_fleet_recorded_as_running_2x_is_not_switched() {
    let store = store_with(2).await;
    let state = MigrationState {
        client_version: "CLIENT_VERSION_2X".into(),
        modified_by: "java-worker".into(),
        modified_at_ms: 1,
        history: Vec::new(),
    };
    assert!(store.put_migration_state(&state, None).await.unwrap());
    let w = start(&store, "w", CoordinationMode::Kcl3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.coordinator.coordination_mode(), CoordinationMode::Kcl2);
    assert_eq!(
        w.coordinator.held_keys().len(),
        2,
        "the 2.x taker took them"
    );
    assert!(store.get_leader_lock().await.unwrap().is_none());
    assert!(store
        .get_worker_metrics(&["w".into()])
        .await
        .unwrap()
        .is_empty());
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn kcl2_mode_writes_no_kcl3_items() {
    let store = store_with(2).await;
    let w = start(&store, "w", CoordinationMode::Kcl2);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.coordinator.held_keys().len(), 2);
    let table = store.scan_table().await.unwrap();
    assert!(table.workers.is_empty() && table.leader.is_none() && table.migration.is_none());
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn leases_in_this_workers_name_are_picked_up_at_start() {
    let store = store_with(2).await;
    lock_held_by_test_leader(&store, true).await;
    // Left by this worker's previous run, which died.
    let left = lease(&store, "shardId-000000000001").await;
    assert!(store.assign_lease(&left, "w").await.unwrap());
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.coordinator.held_keys(), ["shardId-000000000001"]);
    assert_eq!(w.drain().len(), 1);
    w.stop().await;
    // Released at shutdown.
    assert_eq!(
        lease(&store, "shardId-000000000001").await.lease_owner,
        None
    );
}

/// The chaos suite's seed 20: the leader started moving a lease off a worker that had just
/// died, and the worker came back under the same id before it was judged dead. The new run
/// holds no processor of the lease, so no final checkpoint would come, and the new owner waited
/// for the leader to judge the handoff stalled (the graceful handoff timeout and a failover
/// time). The restarted worker ends such handoffs when it starts.
#[tokio::test(start_paused = true)]
async fn a_handoff_left_by_an_earlier_run_of_the_worker_is_ended_when_it_starts() {
    let store = store_with(2).await;
    lock_held_by_test_leader(&store, true).await;
    assign(&store, "shardId-000000000000", "w").await;
    assign(&store, "shardId-000000000001", "w").await;
    let moving = lease(&store, "shardId-000000000000").await;
    assert!(store.start_handoff(&moving, "next").await.unwrap());
    let mut w = start(&store, "w", CoordinationMode::Kcl3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let moved = lease(&store, "shardId-000000000000").await;
    assert_eq!(moved.lease_owner.as_deref(), Some("next"));
    assert_eq!(moved.checkpoint_owner, None, "the handoff is over");
    // The lease the leader left with it is picked up as before.
    assert_eq!(w.coordinator.held_keys(), ["shardId-000000000001"]);
    assert_eq!(w.drain().len(), 1);
    w.stop().await;
}

/// The leader's handoff of a lease of this worker's earlier run, written just before the
/// restarted worker's first discovery lists its leases.
#[derive(Debug)]
struct HandoffBeforeFirstDiscovery {
    table: Arc<InMemoryLeaseStore>,
    lease_key: &'static str,
    written: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl LeaseStoreLayer for HandoffBeforeFirstDiscovery {
    fn inner(&self) -> &dyn LeaseStore {
        self.table.as_ref()
    }

    async fn lease_keys_of_owner(&self, owner: &str) -> kcl_lease::Result<Vec<String>> {
        if !self
            .written
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            let current = lease(&self.table, self.lease_key).await;
            assert!(self.table.start_handoff(&current, "next").await.unwrap());
        }
        self.table.lease_keys_of_owner(owner).await
    }
}

/// The window a scan at start would leave: the handoff lands after the worker started but
/// before its first discovery, which then does not see the lease as this worker's.
#[tokio::test(start_paused = true)]
async fn a_handoff_written_just_before_the_first_discovery_is_ended_too() {
    let store = store_with(1).await;
    lock_held_by_test_leader(&store, true).await;
    let key = "shardId-000000000000";
    assign(&store, key, "w").await;
    let layer = HandoffBeforeFirstDiscovery {
        table: Arc::clone(&store),
        lease_key: key,
        written: std::sync::atomic::AtomicBool::new(false),
    };
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.disable_worker_metrics = true;
    let w = support::start_on(Arc::new(layer), "w", config);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let moved = lease(&store, key).await;
    assert_eq!(moved.lease_owner.as_deref(), Some("next"));
    assert_eq!(moved.checkpoint_owner, None, "the handoff is over");
    assert!(w.coordinator.held_keys().is_empty());
    w.stop().await;
}

/// One worker's way to the table, which a partition cuts: while cut, every call hangs (the
/// connection stays open and silent); once healed, they go through.
#[derive(Debug)]
struct Partitionable {
    table: Arc<InMemoryLeaseStore>,
    cut: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl LeaseStoreLayer for Partitionable {
    fn inner(&self) -> &dyn LeaseStore {
        self.table.as_ref()
    }

    async fn gate(&self, _operation: &'static str) -> kcl_lease::Result<()> {
        let mut cut = self.cut.clone();
        while *cut.borrow_and_update() {
            if cut.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// The chaos suite's partitioned KCL 3 leader: cut off past the failover time while the fleet
/// moved its lease and a leader that judges liveness by per-lease renewals took over, it came
/// back, switched to per-lease renewals and counted its leases as renewed at that moment, so
/// it processed a batch of a lease another worker had owned for 20 s. Two guards stop that now,
/// each enough alone, so this test fails only when both do: the heartbeat self-fence drops the
/// leases during the partition (its calls are bounded, so it runs), and a lease's expiry counts
/// from the last heartbeat, which the switch does not refresh.
#[tokio::test(start_paused = true)]
async fn a_worker_cut_off_past_the_failover_time_never_counts_a_moved_lease_as_its_own() {
    let store = store_with(1).await;
    lock_held_by_test_leader(&store, true).await;
    let (cut, cut_watch) = watch::channel(false);
    let layer = Partitionable {
        table: Arc::clone(&store),
        cut: cut_watch,
    };
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.disable_worker_metrics = true;
    let w = support::start_on(Arc::new(layer), "w", config);
    let key = "shardId-000000000000";
    assign(&store, key, "w").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(w.coordinator.holds_unexpired(key));

    cut.send(true).unwrap();
    tokio::time::sleep(FAILOVER + Duration::from_secs(1)).await;
    assert!(
        !w.coordinator.holds_unexpired(key),
        "no heartbeat for the failover time: the lease may be another's"
    );
    // Meanwhile the fleet moves the lease, and a leader that renews lease by lease takes over.
    assign(&store, key, "x").await;
    let old = store.get_leader_lock().await.unwrap().unwrap();
    let new_leader = LeaderLock {
        owner: "new-leader".into(),
        record_version: "version-2".into(),
        liveness_by_heartbeat: false,
        ..old
    };
    assert!(store
        .acquire_leader_lock(&new_leader, Some("version-1"))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_secs(14)).await;

    cut.send(false).unwrap();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !w.coordinator.holds_unexpired(key),
            "back from the partition, the worker counted a lease of another worker as its own"
        );
    }
    assert!(
        w.coordinator.held_keys().is_empty(),
        "the moved lease is dropped"
    );
    w.stop().await;
}

/// The table, where the first call to end a handoff gets no answer, ever.
#[derive(Debug)]
struct FirstHandoffEndHangs {
    table: Arc<InMemoryLeaseStore>,
    hung: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl LeaseStoreLayer for FirstHandoffEndHangs {
    fn inner(&self) -> &dyn LeaseStore {
        self.table.as_ref()
    }

    async fn complete_handoff(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        if !self.hung.swap(true, std::sync::atomic::Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        self.table.complete_handoff(lease).await
    }
}

/// Found by the chaos suite: a worker's call to end a handoff hung on a silent connection,
/// and the new owner waited over a minute, until the leader judged the handoff stalled. The
/// old owner tries again with a call of its own, within the failover time.
#[tokio::test(start_paused = true)]
async fn a_handoff_whose_end_gets_no_answer_is_ended_by_another_attempt() {
    let store = store_with(1).await;
    lock_held_by_test_leader(&store, true).await;
    let layer = FirstHandoffEndHangs {
        table: Arc::clone(&store),
        hung: std::sync::atomic::AtomicBool::new(false),
    };
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.disable_worker_metrics = true;
    let mut w = support::start_on(Arc::new(layer), "w", config);
    let key = "shardId-000000000000";
    assign(&store, key, "w").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.coordinator.held_keys(), [key]);
    let held = lease(&store, key).await;
    assert!(store.start_handoff(&held, "x").await.unwrap());
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(w
        .drain()
        .contains(&LeaseEvent::HandoffRequested(key.into())));

    let started = tokio::time::Instant::now();
    let ended = tokio::time::timeout(FAILOVER * 3, w.coordinator.complete_handoff(key))
        .await
        .expect("the end of the handoff is not left hanging");
    assert!(ended.unwrap(), "the second attempt ends it");
    assert!(started.elapsed() <= FAILOVER, "within the failover time");
    let handed = lease(&store, key).await;
    assert_eq!(handed.lease_owner.as_deref(), Some("x"));
    assert_eq!(handed.checkpoint_owner, None);
    w.stop().await;
}
