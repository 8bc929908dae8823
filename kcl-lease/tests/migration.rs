//! The 2.x → 3.x migration on the in-memory store, with paused time: a fleet configured
//! `CompatibleWith2x` runs the 2.x protocol while a 2.x worker owns a lease, flips to KCL 3 in
//! place once every owner reports metrics for the stabilisation time, follows a rollback and a
//! roll-forward, and a worker configured for KCL 3 ends the migration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kcl_lease::{
    ClientVersion, CoordinationMode, InMemoryLeaseStore, LeaseConfig, LeaseEvent, LeaseStore,
};

mod support;
use support::{store_with, Running};

const FAILOVER: Duration = Duration::from_secs(10);
const CHECK: Duration = Duration::from_secs(1);
const STABILISATION: Duration = Duration::from_secs(5);
/// The lease a KCL 2.x worker (played by the test) owns and renews.
const JAVA_LEASE: &str = "shardId-000000000005";

fn start(store: &Arc<InMemoryLeaseStore>, id: &str, mode: CoordinationMode) -> Running {
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.mode = mode;
    config.coordination.disable_worker_metrics = true;
    config.coordination.migration_check_interval = CHECK;
    config.coordination.upgrade_stabilisation = STABILISATION;
    config.coordination.upgrade_report_interval = CHECK;
    support::start(store, id, config)
}

/// Leases a worker gained and lost since the last look.
fn moves(worker: &mut Running) -> (usize, usize) {
    let (mut gained, mut lost) = (0, 0);
    for event in worker.drain() {
        match event {
            LeaseEvent::Gained(_) => gained += 1,
            LeaseEvent::Lost(_) => lost += 1,
            _ => {}
        }
    }
    (gained, lost)
}

async fn version(store: &InMemoryLeaseStore) -> Option<String> {
    store
        .get_migration_state()
        .await
        .unwrap()
        .map(|state| state.client_version)
}

/// Sets the migration state as Java's `KclMigrationTool.py` does (rollback, roll-forward).
async fn set_version(store: &InMemoryLeaseStore, from: ClientVersion, to: ClientVersion) {
    let current = store.get_migration_state().await.unwrap();
    let next = kcl_lease::next_migration_state(current.as_ref(), to, "operator", 1);
    assert!(store
        .put_migration_state(&next, Some(from.as_str()))
        .await
        .unwrap());
}

/// Every lease's owner, from the table.
async fn owners(store: &InMemoryLeaseStore) -> BTreeMap<String, Option<String>> {
    store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.lease_key, l.lease_owner))
        .collect()
}

/// Waits (polling every 100 ms) until `condition` holds; returns when. Panics after `limit`.
async fn wait_until<F, Fut>(limit: Duration, condition: F) -> tokio::time::Instant
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::Instant::now()
}

/// Plays a KCL 2.x worker that owns one lease and renews it, for `duration`.
async fn java_2x_worker_renews(store: &InMemoryLeaseStore, duration: Duration) {
    let until = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < until {
        let lease = store.get_lease(JAVA_LEASE).await.unwrap().unwrap();
        assert_eq!(lease.lease_owner.as_deref(), Some("java-2x"));
        assert!(store.renew_lease(&lease).await.unwrap());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgrading_fleet_flips_to_kcl3_once_every_owner_reports_and_follows_rollbacks() {
    let store = store_with(6).await;
    let java = store.get_lease(JAVA_LEASE).await.unwrap().unwrap();
    assert!(store.take_lease(&java, "java-2x").await.unwrap());
    let mut a = start(&store, "worker-a", CoordinationMode::CompatibleWith2x);
    let mut b = start(&store, "worker-b", CoordinationMode::CompatibleWith2x);

    // Upgrade phase: the 2.x protocol, metrics reported, held back by the 2.x worker.
    java_2x_worker_renews(&store, Duration::from_secs(40)).await;
    assert_eq!(
        version(&store).await.as_deref(),
        Some("CLIENT_VERSION_UPGRADE_FROM_2X")
    );
    for w in [&a, &b] {
        assert_eq!(w.coordinator.coordination_mode(), CoordinationMode::Kcl2);
        assert_eq!(
            w.coordinator.client_version(),
            Some(ClientVersion::UpgradeFrom2x)
        );
    }
    let table = store.scan_table().await.unwrap();
    assert_eq!(table.workers.len(), 2, "both workers report metrics");
    assert!(table.leader.is_none(), "no KCL 3 leader before the flip");
    assert_eq!(
        owners(&store).await[JAVA_LEASE].as_deref(),
        Some("java-2x"),
        "a renewed lease is not taken"
    );

    // The 2.x worker stops; its lease expires and is taken; every owner now reports. The
    // fleet flips a stabilisation time after the first check that finds it ready, not before.
    let ready_at = wait_until(Duration::from_secs(60), || async {
        owners(&store).await[JAVA_LEASE].as_deref() != Some("java-2x")
    })
    .await;
    tokio::time::sleep_until(ready_at + STABILISATION - CHECK / 2).await;
    assert_eq!(
        version(&store).await.as_deref(),
        Some("CLIENT_VERSION_UPGRADE_FROM_2X"),
        "not flipped before the stabilisation time"
    );
    // The deterministic leader is recomputed at each taker run, so the first check may come
    // a taker period after the take.
    wait_until(Duration::from_secs(60), || async {
        version(&store).await.as_deref() == Some("CLIENT_VERSION_3X_WITH_ROLLBACK")
    })
    .await;
    let state = store.get_migration_state().await.unwrap().unwrap();
    assert_eq!(state.client_version, "CLIENT_VERSION_3X_WITH_ROLLBACK");
    assert_eq!(
        state.history[0].client_version,
        "CLIENT_VERSION_UPGRADE_FROM_2X"
    );
    tokio::time::sleep(CHECK * 2).await;
    for w in [&a, &b] {
        assert_eq!(w.coordinator.coordination_mode(), CoordinationMode::Kcl3);
    }
    let lock = store
        .get_leader_lock()
        .await
        .unwrap()
        .expect("a KCL 3 leader");
    assert!(
        !lock.liveness_by_heartbeat,
        "while a rollback is possible, leases are renewed one by one"
    );
    let table = owners(&store).await;
    assert!(table
        .values()
        .all(|o| matches!(o.as_deref(), Some("worker-a" | "worker-b"))));
    moves(&mut a);
    moves(&mut b);

    // Steady under KCL 3 with rollback: no lease moves, counters keep rising.
    let before = store.list_leases().await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = store.list_leases().await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        assert!(
            new.lease_counter > old.lease_counter,
            "{} renewed",
            new.lease_key
        );
        assert_eq!(old.lease_owner, new.lease_owner);
    }

    // Rollback: back to the 2.x protocol in place, the lock given up, the leases kept.
    set_version(
        &store,
        ClientVersion::Kcl3xWithRollback,
        ClientVersion::Kcl2x,
    )
    .await;
    tokio::time::sleep(CHECK * 3).await;
    for w in [&a, &b] {
        assert_eq!(w.coordinator.coordination_mode(), CoordinationMode::Kcl2);
    }
    assert!(store.get_leader_lock().await.unwrap().is_none());
    tokio::time::sleep(FAILOVER * 3).await;
    assert_eq!(
        owners(&store).await,
        table,
        "no lease moved across the rollback"
    );
    assert_eq!(moves(&mut a), (0, 0));
    assert_eq!(moves(&mut b), (0, 0));

    // Roll-forward: the upgrade check runs again and flips again.
    set_version(&store, ClientVersion::Kcl2x, ClientVersion::UpgradeFrom2x).await;
    wait_until(STABILISATION + Duration::from_secs(60), || async {
        version(&store).await.as_deref() == Some("CLIENT_VERSION_3X_WITH_ROLLBACK")
    })
    .await;
    tokio::time::sleep(CHECK * 2).await;

    // A worker configured for KCL 3 ends the migration: 3X, and liveness by heartbeat.
    let c = start(&store, "worker-c", CoordinationMode::Kcl3);
    tokio::time::sleep(CHECK * 4).await;
    assert_eq!(version(&store).await.as_deref(), Some("CLIENT_VERSION_3X"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let lock = store.get_leader_lock().await.unwrap().expect("a leader");
    assert!(lock.liveness_by_heartbeat);
    for w in [&a, &b, &c] {
        assert_eq!(w.coordinator.client_version(), Some(ClientVersion::Kcl3x));
    }
    c.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pure_2x_worker_reads_and_writes_no_migration_state() {
    let store = store_with(2).await;
    let w = start(&store, "worker-a", CoordinationMode::Kcl2);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.coordinator.held_keys().len(), 2);
    assert_eq!(w.coordinator.client_version(), None);
    assert!(
        w.coordinator.is_leader(),
        "the only owner is the 2.x leader"
    );
    let table = store.scan_table().await.unwrap();
    assert!(table.migration.is_none() && table.workers.is_empty());
    w.stop().await;
}
