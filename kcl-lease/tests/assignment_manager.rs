//! The KCL 3 leader's loop on the in-memory store, with paused time: liveness from heartbeats,
//! assignment of a dead worker's leases, rebalancing by handoff, draining, stalled handoffs,
//! Java workers, and a successor's takeover.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kcl_lease::{
    AssignmentStrategy, InMemoryLeaseStore, Lease, LeaseAssignmentManager, LeaseConfig, LeaseStore,
    LeaseStoreLayer, Result, StoredCheckpoint, TableSnapshot, WorkerMetrics, METRIC_CPU,
};

const FAILOVER: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(500);

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The in-memory table, where some workers write their metrics as Java's do: without this
/// library's heartbeat counter, and with a `lut` the test chooses.
#[derive(Debug, Default)]
struct Table {
    inner: InMemoryLeaseStore,
    java_workers: Mutex<BTreeSet<String>>,
    /// When set, every other heartbeat read answers like a replica one report behind.
    lagging_replica: AtomicBool,
    reads: AtomicU64,
    scans: AtomicU64,
}

impl Table {
    fn strip_java_heartbeats(&self, mut workers: Vec<WorkerMetrics>) -> Vec<WorkerMetrics> {
        let java = self.java_workers.lock().unwrap();
        for worker in &mut workers {
            if java.contains(&worker.worker_id) {
                worker.heartbeat = None;
            }
        }
        workers
    }

    async fn report(&self, id: &str, cpu: Option<f64>) {
        let mut metrics = WorkerMetrics::new(id);
        metrics.last_update_secs = wall_secs();
        if let Some(cpu) = cpu {
            metrics.stats.insert(METRIC_CPU.to_owned(), vec![cpu]);
            metrics
                .operating_range
                .insert(METRIC_CPU.to_owned(), vec![100.0]);
        }
        self.inner.report_worker_metrics(&metrics).await.unwrap();
    }

    async fn report_as_java(&self, id: &str, last_update_secs: u64) {
        self.java_workers.lock().unwrap().insert(id.to_owned());
        let mut metrics = WorkerMetrics::new(id);
        metrics.last_update_secs = last_update_secs;
        metrics.stats.insert(METRIC_CPU.to_owned(), vec![10.0]);
        metrics
            .operating_range
            .insert(METRIC_CPU.to_owned(), vec![100.0]);
        self.inner.report_worker_metrics(&metrics).await.unwrap();
    }

    async fn owners(&self) -> BTreeMap<String, Lease> {
        self.inner
            .list_leases()
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.lease_key.clone(), l))
            .collect()
    }

    async fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for lease in self.owners().await.into_values() {
            if let Some(owner) = lease.lease_owner {
                *counts.entry(owner).or_insert(0) += 1;
            }
        }
        counts
    }

    async fn held_by(&self, owner: &str) -> usize {
        self.counts().await.get(owner).copied().unwrap_or(0)
    }

    /// What the old owners do when asked for a handoff: checkpoint and let go.
    async fn complete_handoffs(&self) {
        for lease in self.owners().await.into_values() {
            if lease.checkpoint_owner.is_some() {
                assert!(self.inner.complete_handoff(&lease).await.unwrap());
            }
        }
    }
}

#[async_trait]
impl LeaseStoreLayer for Table {
    fn inner(&self) -> &dyn LeaseStore {
        &self.inner
    }

    async fn scan_table(&self) -> Result<TableSnapshot> {
        self.scans.fetch_add(1, Ordering::Relaxed);
        let mut snapshot = self.inner.scan_table().await?;
        snapshot.workers = self.strip_java_heartbeats(snapshot.workers);
        Ok(snapshot)
    }
    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>> {
        let mut workers = self.inner.get_worker_metrics(worker_ids).await?;
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        if self.lagging_replica.load(Ordering::Relaxed) && read % 2 == 1 {
            for worker in &mut workers {
                worker.heartbeat = worker.heartbeat.map(|beat| beat.saturating_sub(1));
            }
        }
        Ok(self.strip_java_heartbeats(workers))
    }
}

fn config(strategy: AssignmentStrategy) -> LeaseConfig {
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.strategy = strategy;
    config
}

/// A table with the leases `owners` lists (key → owner, `None` unowned).
async fn table_with(owners: &[(&str, Option<&str>)]) -> Arc<Table> {
    let table = Arc::new(Table::default());
    for (key, owner) in owners {
        let mut lease = Lease::new(*key, StoredCheckpoint::new("TRIM_HORIZON"));
        lease.lease_owner = owner.map(str::to_owned);
        assert!(table.inner.create_lease_if_absent(&lease).await.unwrap());
    }
    table
}

fn manager(table: &Arc<Table>, id: &str, config: LeaseConfig) -> LeaseAssignmentManager {
    LeaseAssignmentManager::new(
        Arc::clone(table) as Arc<dyn LeaseStore>,
        id,
        config,
        Arc::new(|_: &Lease| true),
    )
}

/// One liveness interval: the `reporting` workers report, the leader steps, time moves on.
async fn step(table: &Table, leader: &mut LeaseAssignmentManager, reporting: &[&str]) {
    for id in reporting {
        table.report(id, None).await;
    }
    leader.tick_as_leader().await.unwrap();
    tokio::time::advance(STEP).await;
}

fn two_each(workers: &[&'static str]) -> Vec<(String, Option<&'static str>)> {
    workers
        .iter()
        .flat_map(|w| (0..2).map(move |i| (format!("{w}-{i}"), Some(*w))))
        .collect()
}

async fn table_of(leases: &[(String, Option<&str>)]) -> Arc<Table> {
    let owners: Vec<(&str, Option<&str>)> = leases.iter().map(|(k, o)| (k.as_str(), *o)).collect();
    table_with(&owners).await
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_is_dead_after_the_failover_time_and_its_leases_move_at_once() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::LeaseCount));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    assert_eq!(leader.live_workers(), vec!["a", "b", "leader"]);
    assert_eq!(
        table.held_by("b").await,
        2,
        "a balanced fleet is left alone"
    );

    // b stops reporting; the leader saw its last heartbeat at the next step.
    let mut silent = Duration::ZERO;
    while silent < FAILOVER - STEP {
        step(&table, &mut leader, &["leader", "a"]).await;
        silent += STEP;
        assert_eq!(
            table.held_by("b").await,
            2,
            "b is not dead yet after {silent:?}"
        );
    }
    step(&table, &mut leader, &["leader", "a"]).await;
    step(&table, &mut leader, &["leader", "a"]).await;
    assert_eq!(table.held_by("b").await, 0);
    assert_eq!(leader.live_workers(), vec!["a", "leader"]);
    let counts = table.counts().await;
    assert_eq!(counts["a"] + counts["leader"], 6);
    // Well before the next scheduled round (every 20 s): the death itself triggered it.
    assert_eq!(leader.rounds(), 1);
    assert_eq!(leader.last_round().unwrap().assigned, 2);
    // The receivers were told to look their leases up.
    let generations: u64 = table
        .inner
        .get_worker_metrics(&["a".into(), "leader".into()])
        .await
        .unwrap()
        .iter()
        .map(|w| w.assignment_generation)
        .sum();
    assert!(generations >= 1);
}

#[tokio::test(start_paused = true)]
async fn workers_that_keep_reporting_keep_their_leases() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    let before = table.owners().await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    for _ in 0..240 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    assert!(leader.rounds() >= 6);
    // Not a single write: owners and counters as they were, although nobody renewed.
    assert_eq!(table.owners().await, before);
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_moves_leases_off_the_busiest_worker_by_handoff() {
    let table = Arc::new(Table::default());
    for i in 0..9 {
        let mut lease = Lease::new(format!("s{i}"), StoredCheckpoint::new("TRIM_HORIZON"));
        lease.lease_owner = Some("a".to_owned());
        lease.throughput_kbps = Some(10.0);
        assert!(table.inner.create_lease_if_absent(&lease).await.unwrap());
    }
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    let after = table.owners().await;
    let handed: Vec<&Lease> = after
        .values()
        .filter(|l| l.checkpoint_owner.is_some())
        .collect();
    // a holds all the throughput; the average is a third of it; 60 % of a's excess moves.
    assert_eq!(handed.len(), 3, "{after:?}");
    for lease in &handed {
        assert_eq!(lease.checkpoint_owner.as_deref(), Some("a"));
        assert_ne!(lease.lease_owner.as_deref(), Some("a"));
        assert_eq!(
            lease.lease_counter, 0,
            "a handoff does not bump the counter"
        );
    }
    // A pending handoff is not touched again by the following rounds.
    for _ in 0..10 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    assert_eq!(table.owners().await, after);
    table.complete_handoffs().await;
    assert_eq!(table.held_by("a").await, 6);
}

#[tokio::test(start_paused = true)]
async fn a_drained_worker_hands_all_its_leases_off() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::LeaseCount));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    assert!(table.inner.set_worker_draining("a", true).await.unwrap());
    // The next scheduled round (every 20 s) hands a's leases off.
    for _ in 0..41 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    let owners = table.owners().await;
    let from_a: Vec<&Lease> = owners
        .values()
        .filter(|l| l.checkpoint_owner.as_deref() == Some("a"))
        .collect();
    assert_eq!(from_a.len(), 2, "{owners:?}");
    table.complete_handoffs().await;
    assert_eq!(table.held_by("a").await, 0);
    let counts = table.counts().await;
    assert_eq!((counts["leader"], counts["b"]), (3, 3));
    assert!(!leader.live_workers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handoff_is_assigned_after_the_handoff_timeout_and_a_failover_time() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    let stuck = table.inner.get_lease("a-0").await.unwrap().unwrap();
    assert!(table.inner.start_handoff(&stuck, "b").await.unwrap());
    let config = config(AssignmentStrategy::LeaseCount);
    let limit = config.graceful_handoff_timeout + FAILOVER;
    let mut leader = manager(&table, "leader", config);
    let mut elapsed = Duration::ZERO;
    while elapsed < limit {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
        elapsed += STEP;
        let lease = table.inner.get_lease("a-0").await.unwrap().unwrap();
        assert_eq!(
            lease.checkpoint_owner.as_deref(),
            Some("a"),
            "at {elapsed:?}"
        );
    }
    // The first round after the limit assigns it plainly.
    for _ in 0..41 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    let lease = table.inner.get_lease("a-0").await.unwrap().unwrap();
    assert_eq!(lease.checkpoint_owner, None);
    assert!(lease.lease_owner.is_some());
    assert_eq!(lease.lease_counter, 1);
}

#[tokio::test(start_paused = true)]
async fn java_workers_are_judged_by_lut_and_lease_counters() {
    let table = table_with(&[
        ("renewed", Some("java")),
        ("silent", Some("java")),
        ("stale", Some("gone")),
        ("ours", Some("a")),
    ])
    .await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    let java_step = |table: Arc<Table>| async move {
        table.report_as_java("java", wall_secs()).await;
        // "gone" last reported two minutes ago: stale by Java's 60 s rule.
        table.report_as_java("gone", wall_secs() - 120).await;
        // The Java worker renews one of its leases, not the other.
        let renewed = table.inner.get_lease("renewed").await.unwrap().unwrap();
        assert!(table.inner.renew_lease(&renewed).await.unwrap());
    };
    for _ in 0..4 {
        java_step(Arc::clone(&table)).await;
        table.report("leader", Some(10.0)).await;
        table.report("a", Some(10.0)).await;
        leader.tick_as_leader().await.unwrap();
        tokio::time::advance(STEP).await;
    }
    let owners = table.owners().await;
    assert_ne!(owners["stale"].lease_owner.as_deref(), Some("gone"));
    assert_eq!(
        owners["silent"].lease_owner.as_deref(),
        Some("java"),
        "not expired yet"
    );
    assert_eq!(
        leader.live_workers(),
        vec!["a", "java", "leader"],
        "a fresh Java worker is live, a stale one is not"
    );
    for _ in 0..42 {
        java_step(Arc::clone(&table)).await;
        table.report("leader", Some(10.0)).await;
        table.report("a", Some(10.0)).await;
        leader.tick_as_leader().await.unwrap();
        tokio::time::advance(STEP).await;
    }
    let owners = table.owners().await;
    assert_eq!(owners["renewed"].lease_owner.as_deref(), Some("java"));
    let silent = owners["silent"].lease_owner.as_deref();
    assert!(
        silent == Some("leader") || silent == Some("a"),
        "{silent:?}"
    );
    assert_eq!(owners["ours"].lease_owner.as_deref(), Some("a"));
}

#[tokio::test(start_paused = true)]
async fn four_workers_starting_together_on_1000_leases_are_balanced_by_the_first_round() {
    let leases: Vec<(String, Option<&str>)> =
        (0..1_000).map(|i| (format!("s{i:04}"), None)).collect();
    let table = table_of(&leases).await;
    let workers = ["leader", "w1", "w2", "w3"];
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    while leader.rounds() < 2 {
        step(&table, &mut leader, &workers).await;
    }
    let counts: Vec<usize> = table.counts().await.into_values().collect();
    assert_eq!(counts.len(), 4);
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn workers_joining_a_loaded_leader_are_balanced_to_one_lease_within_two_rounds() {
    let leases: Vec<(String, Option<&str>)> =
        (0..1_000).map(|i| (format!("s{i:04}"), None)).collect();
    let table = table_of(&leases).await;
    let config = config(AssignmentStrategy::LeaseCount);
    let interval = config.coordination.assignment_interval;
    let mut leader = manager(&table, "leader", config);
    for _ in 0..4 {
        step(&table, &mut leader, &["leader"]).await;
    }
    assert_eq!(table.held_by("leader").await, 1_000);
    let rounds_before = leader.rounds();
    // The newcomers are found by the next scheduled round's scan, and balanced in as soon
    // as their heartbeats move: within one interval and a step, two rounds.
    let workers = ["leader", "w1", "w2", "w3"];
    let mut elapsed = Duration::ZERO;
    while elapsed <= interval + STEP {
        step(&table, &mut leader, &workers).await;
        table.complete_handoffs().await;
        elapsed += STEP;
    }
    assert!(leader.rounds() <= rounds_before + 2);
    let counts: Vec<usize> = table.counts().await.into_values().collect();
    assert_eq!(counts.len(), 4);
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_successor_taking_over_assigns_dead_workers_leases_at_once() {
    a_successor_takes_over(&[]).await;
}

#[tokio::test(start_paused = true)]
async fn a_successor_told_the_fleet_by_the_lock_never_scans() {
    a_successor_takes_over(&["leader".into(), "a".into(), "b".into()]).await;
}

/// The leader and one worker die together; the successor, which watched them (learning them
/// from `fleet`, the leader's list in its lock, or by scanning when the list is empty),
/// places their leases at its first step as leader.
async fn a_successor_takes_over(fleet: &[String]) {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::LeaseCount));
    let mut successor = manager(&table, "b", config(AssignmentStrategy::LeaseCount));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
        let scans = table.scans.load(Ordering::Relaxed);
        successor.tick_as_successor(fleet).await.unwrap();
        if !fleet.is_empty() {
            assert_eq!(
                table.scans.load(Ordering::Relaxed),
                scans,
                "the successor scanned"
            );
        }
    }
    // The leader and a die together; the successor keeps watching until the lock's lease
    // duration (a failover time) runs out.
    let mut silent = Duration::ZERO;
    while silent <= FAILOVER {
        table.report("b", None).await;
        successor.tick_as_successor(fleet).await.unwrap();
        tokio::time::advance(STEP).await;
        silent += STEP;
    }
    let owners_before = table.owners().await;
    successor.reset();
    table.report("b", None).await;
    successor.tick_as_leader().await.unwrap();
    assert_eq!(table.held_by("b").await, 6, "at the first step as leader");
    assert_eq!(successor.live_workers(), vec!["b"]);
    assert_ne!(table.owners().await, owners_before);
}

#[tokio::test(start_paused = true)]
async fn a_leader_without_heartbeat_observations_waits_a_failover_time() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    table.report("leader", None).await;
    table.report("a", None).await;
    let mut fresh = manager(&table, "b", config(AssignmentStrategy::LeaseCount));
    for _ in 0..4 {
        step(&table, &mut fresh, &["b"]).await;
    }
    assert_eq!(table.held_by("b").await, 2);
}

#[tokio::test(start_paused = true)]
async fn only_the_leases_the_filter_accepts_are_assigned() {
    let table = table_with(&[("mine-0", None), ("mine-1", None), ("theirs-0", None)]).await;
    let mut leader = LeaseAssignmentManager::new(
        Arc::clone(&table) as Arc<dyn LeaseStore>,
        "leader",
        config(AssignmentStrategy::Utilisation),
        Arc::new(|lease: &Lease| lease.lease_key.starts_with("mine-")),
    );
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a"]).await;
    }
    let owners = table.owners().await;
    assert!(owners["mine-0"].lease_owner.is_some());
    assert!(owners["mine-1"].lease_owner.is_some());
    assert_eq!(owners["theirs-0"].lease_owner, None);
    assert_eq!(owners["theirs-0"].lease_counter, 0);
    assert_eq!(leader.last_round().unwrap().leases, 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_heartbeat_never_moves_gets_no_leases_and_stale_items_are_deleted() {
    let leases: Vec<(String, Option<&str>)> = (0..6).map(|i| (format!("s{i}"), None)).collect();
    let table = table_of(&leases).await;
    // An item left behind by a worker that stopped long ago looks fresh to a new leader; it
    // is trusted only once its heartbeat moves.
    table.report("ghost", None).await;
    table
        .report_as_java("ancient", wall_secs() - 2 * 24 * 60 * 60)
        .await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a"]).await;
    }
    let counts = table.counts().await;
    assert_eq!(counts.get("ghost"), None, "{counts:?}");
    assert_eq!(counts["leader"] + counts["a"], 6);
    let left = table
        .inner
        .get_worker_metrics(&["ancient".into(), "ghost".into()])
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|w| w.worker_id.as_str())
            .collect::<Vec<_>>(),
        vec!["ghost"],
        "a worker silent for a day is deleted"
    );
}

#[tokio::test(start_paused = true)]
async fn workers_reporting_just_after_a_new_leader_starts_count_in_its_first_round() {
    let leases: Vec<(String, Option<&str>)> =
        (0..1_000).map(|i| (format!("s{i:04}"), None)).collect();
    let table = table_of(&leases).await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::Utilisation));
    // The leader reports and leads before the others' first reports.
    step(&table, &mut leader, &["leader"]).await;
    while leader.rounds() < 1 {
        step(&table, &mut leader, &["leader", "w1", "w2", "w3"]).await;
    }
    let counts: Vec<usize> = table.counts().await.into_values().collect();
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lagging_replica_does_not_keep_a_dead_worker_alive() {
    let table = table_of(&two_each(&["leader", "a", "b"])).await;
    table.lagging_replica.store(true, Ordering::Relaxed);
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::LeaseCount));
    for _ in 0..4 {
        step(&table, &mut leader, &["leader", "a", "b"]).await;
    }
    assert_eq!(leader.live_workers(), vec!["a", "b", "leader"]);
    // b dies; reads alternate between its last heartbeat and the one before.
    for _ in 0..(FAILOVER.as_millis() / STEP.as_millis() + 2) {
        step(&table, &mut leader, &["leader", "a"]).await;
    }
    assert_eq!(leader.live_workers(), vec!["a", "leader"]);
    assert_eq!(table.held_by("b").await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_worker_restarted_under_its_id_between_two_checks_is_not_judged_dead() {
    let table = table_of(&two_each(&["leader", "a"])).await;
    let mut leader = manager(&table, "leader", config(AssignmentStrategy::LeaseCount));
    // Long enough that a counter starting over would stay below the old one for longer than
    // the failover time.
    for _ in 0..60 {
        step(&table, &mut leader, &["leader", "a"]).await;
    }
    assert_eq!(leader.live_workers(), vec!["a", "leader"]);
    // "a" stops (deleting its metrics item) and starts again between two of the leader's
    // checks. Its new item's counter starts at the clock, above the old item's, which grew
    // by one per report. (Reports here come without real time passing: the real sleep stands
    // for the 250 ms between two reports of a real worker.)
    let item = table
        .inner
        .get_worker_metrics(&["a".to_owned()])
        .await
        .unwrap()
        .remove(0);
    assert!(table
        .inner
        .delete_worker_metrics("a", item.last_update_secs)
        .await
        .unwrap());
    std::thread::sleep(Duration::from_millis(100));
    let owners_before = table.owners().await;
    let mut elapsed = Duration::ZERO;
    while elapsed <= FAILOVER * 2 {
        step(&table, &mut leader, &["leader", "a"]).await;
        elapsed += STEP;
    }
    assert_eq!(leader.live_workers(), vec!["a", "leader"]);
    assert_eq!(table.owners().await, owners_before, "no lease of a moved");
}
