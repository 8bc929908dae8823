//! The lease coordinator's rules on the in-memory store, with paused time.

use std::sync::Arc;
use std::time::Duration;

use kcl_lease::{
    CheckpointUpdate, InMemoryLeaseStore, Lease, LeaseConfig, LeaseCoordinator, LeaseEvent,
    LeaseStore, StoredCheckpoint,
};
use tokio::sync::mpsc::Receiver;

mod support;
use support::store_with;

const FAILOVER: Duration = Duration::from_secs(10);

fn worker(
    store: &Arc<InMemoryLeaseStore>,
    id: &str,
) -> (Arc<LeaseCoordinator>, Receiver<LeaseEvent>) {
    LeaseCoordinator::new(
        Arc::clone(store) as Arc<dyn LeaseStore>,
        id,
        LeaseConfig::with_failover_time(FAILOVER),
    )
}

fn checkpoint_at(seq: &str) -> CheckpointUpdate {
    CheckpointUpdate {
        checkpoint: StoredCheckpoint::new(seq),
        pending_checkpoint: None,
        pending_checkpoint_state: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_worker_takes_every_lease_and_renewal_bumps_counters() {
    let store = store_with(5).await;
    let (a, mut events) = worker(&store, "a");
    assert_eq!(a.take_leases().await.unwrap().len(), 5);
    for _ in 0..5 {
        assert!(matches!(events.recv().await, Some(LeaseEvent::Gained(_))));
    }
    let before = store
        .get_lease("shardId-000000000000")
        .await
        .unwrap()
        .unwrap()
        .lease_counter;
    a.renew_all().await;
    let after = store
        .get_lease("shardId-000000000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.lease_counter, before + 1);
    assert_eq!(after.lease_owner.as_deref(), Some("a"));
}

fn plain_stealing_worker(
    store: &Arc<InMemoryLeaseStore>,
    id: &str,
) -> (Arc<LeaseCoordinator>, Receiver<LeaseEvent>) {
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.graceful_handoff = false;
    LeaseCoordinator::new(Arc::clone(store) as Arc<dyn LeaseStore>, id, config)
}

#[tokio::test(start_paused = true)]
async fn two_workers_split_leases_evenly_then_a_dead_one_is_replaced_after_failover() {
    let store = store_with(10).await;
    let (a, _a_events) = plain_stealing_worker(&store, "a");
    let (b, mut b_events) = plain_stealing_worker(&store, "b");
    // a alone first: everything is unowned, so it takes all ten.
    assert_eq!(a.take_leases().await.unwrap().len(), 10);
    // b sees ten live leases on one worker: nothing free, so it steals one per run.
    for _ in 0..5 {
        b.take_leases().await.unwrap();
        a.renew_all().await;
        b.renew_all().await;
    }
    assert_eq!(b.held_keys().len(), 5, "b steals up to the target of 5");
    assert_eq!(
        a.held_keys().len(),
        5,
        "a noticed the steals at its renewals"
    );
    while let Ok(event) = b_events.try_recv() {
        assert!(matches!(event, LeaseEvent::Gained(_)));
    }

    // a dies (stops renewing). Before the failover time its leases are not taken...
    tokio::time::advance(FAILOVER / 2).await;
    b.renew_all().await;
    b.take_leases().await.unwrap();
    assert_eq!(b.held_keys().len(), 5);
    // ...once their counters have stood still, as b saw them, for longer than it, they are.
    tokio::time::advance(FAILOVER + Duration::from_secs(1)).await;
    b.renew_all().await;
    b.take_leases().await.unwrap();
    assert_eq!(b.held_keys().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn unowned_leases_are_preferred_to_stealing_and_release_hands_over_at_once() {
    let store = store_with(4).await;
    let (a, _) = worker(&store, "a");
    let (b, _) = worker(&store, "b");
    a.take_leases().await.unwrap();
    assert_eq!(a.held_keys().len(), 4);
    let key = a.held_keys()[0].clone();
    assert!(a.release(&key).await.unwrap());
    assert!(!a.held_keys().contains(&key));
    // The released lease is unowned: b takes it without waiting for any failover.
    let taken = b.take_leases().await.unwrap();
    assert!(taken.contains(&key), "{taken:?}");
}

#[tokio::test(start_paused = true)]
async fn max_leases_for_worker_caps_the_target() {
    let store = store_with(6).await;
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.max_leases_for_worker = 2;
    let (a, _) = LeaseCoordinator::new(Arc::clone(&store) as Arc<dyn LeaseStore>, "a", config);
    a.take_leases().await.unwrap();
    assert_eq!(a.held_keys().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_paused_past_expiry_cannot_overwrite_the_new_owners_checkpoint() {
    let store = store_with(1).await;
    let key = "shardId-000000000000";
    let (a, mut a_events) = worker(&store, "a");
    let (b, _) = worker(&store, "b");
    a.take_leases().await.unwrap();
    assert!(a.checkpoint(key, &checkpoint_at("100")).await.unwrap());
    // b watches the lease; a stalls (a long GC pause, a frozen VM) past the failover time.
    b.take_leases().await.unwrap();
    tokio::time::advance(FAILOVER + Duration::from_secs(1)).await;
    assert_eq!(b.take_leases().await.unwrap(), vec![key.to_owned()]);
    assert!(b.checkpoint(key, &checkpoint_at("200")).await.unwrap());
    // a wakes up and checkpoints: fenced by the counter, nothing is written.
    assert!(!a.checkpoint(key, &checkpoint_at("150")).await.unwrap());
    let stored = store.get_lease(key).await.unwrap().unwrap();
    assert_eq!(stored.checkpoint.unwrap().sequence_number, "200");
    assert_eq!(stored.lease_owner.as_deref(), Some("b"));
    assert!(a.held_keys().is_empty());
    let mut lost = false;
    while let Ok(event) = a_events.try_recv() {
        lost |= event == LeaseEvent::Lost(key.to_owned());
    }
    assert!(lost, "a is told it lost the lease");
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_between_renewals_does_not_cost_the_lease() {
    let store = store_with(1).await;
    let key = "shardId-000000000000";
    let (a, _) = worker(&store, "a");
    a.take_leases().await.unwrap();
    for i in 0..5 {
        assert!(a
            .checkpoint(key, &checkpoint_at(&format!("{i}")))
            .await
            .unwrap());
        a.renew_all().await;
        assert_eq!(a.held_keys(), vec![key.to_owned()], "round {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_leases_are_renewed_in_one_pass() {
    let store = store_with(1000).await;
    let (a, _) = worker(&store, "a");
    assert_eq!(a.take_leases().await.unwrap().len(), 1000);
    a.renew_all().await;
    let leases = store.list_leases().await.unwrap();
    assert!(
        leases.iter().all(|l| l.lease_counter == 2),
        "taken (1) and renewed once (2)"
    );
}

/// The KCL 3 handoff as lease-table states: asked for by the taker, adopted by the owner at
/// its next renewal, checkpointed by the owner, completed, then taken at that checkpoint.
#[tokio::test(start_paused = true)]
async fn a_steal_is_a_graceful_handoff_completed_by_the_owner_after_its_checkpoint() {
    let store = store_with(2).await;
    let (a, mut a_events) = worker(&store, "a");
    let (b, mut b_events) = worker(&store, "b");
    assert_eq!(a.take_leases().await.unwrap().len(), 2);
    while a_events.try_recv().is_ok() {}
    // b wants one: nothing is free, so it asks a for one instead of taking it.
    assert!(b.take_leases().await.unwrap().is_empty());
    let asked: Vec<Lease> = store
        .list_leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.checkpoint_owner.is_some())
        .collect();
    assert_eq!(asked.len(), 1);
    let key = asked[0].lease_key.clone();
    assert_eq!(asked[0].lease_owner.as_deref(), Some("b"));
    assert_eq!(asked[0].checkpoint_owner.as_deref(), Some("a"));
    // a learns at its next renewal, keeps the lease meanwhile, and may still checkpoint.
    a.renew_all().await;
    assert_eq!(
        a_events.try_recv().unwrap(),
        LeaseEvent::HandoffRequested(key.clone())
    );
    assert!(a.handoff_requested(&key));
    assert!(a.checkpoint(&key, &checkpoint_at("4711")).await.unwrap());
    // b does not take a lease whose handoff is under way.
    assert!(b.take_leases().await.unwrap().is_empty());
    assert!(b.held_keys().is_empty());
    // a lets go; b takes it at a's checkpoint.
    assert!(a.complete_handoff(&key).await.unwrap());
    assert_eq!(a.held_keys().len(), 1);
    assert_eq!(b.take_leases().await.unwrap(), vec![key.clone()]);
    match b_events.try_recv().unwrap() {
        LeaseEvent::Gained(lease) => {
            assert_eq!(lease.checkpoint.unwrap().sequence_number, "4711");
            assert_eq!(lease.checkpoint_owner, None);
        }
        other => panic!("expected the lease, got {other:?}"),
    }
}

/// An owner that does not finish a handoff in time lets go anyway; an owner that is gone (it
/// never adopts the handoff) loses the lease to the taker after the failover time.
#[tokio::test(start_paused = true)]
async fn stalled_handoffs_end_by_timeout_or_by_expiry() {
    let store = store_with(2).await;
    let (a, mut a_events) = worker(&store, "a");
    let (b, _b_events) = worker(&store, "b");
    a.take_leases().await.unwrap();
    while a_events.try_recv().is_ok() {}
    b.take_leases().await.unwrap();
    a.renew_all().await;
    let Ok(LeaseEvent::HandoffRequested(key)) = a_events.try_recv() else {
        panic!("a was asked for a lease");
    };
    // a's processor never finishes: after the handoff timeout a lets go by itself.
    tokio::time::advance(LeaseConfig::default().graceful_handoff_timeout + Duration::from_secs(1))
        .await;
    a.renew_all().await;
    assert_eq!(a_events.try_recv().unwrap(), LeaseEvent::Lost(key.clone()));
    let lease = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(lease.checkpoint_owner, None);
    assert_eq!(lease.lease_owner.as_deref(), Some("b"));

    // A dead owner never adopts the handoff: after the failover time the taker takes it.
    let store = store_with(2).await;
    let (dead, _) = worker(&store, "dead");
    let (taker, _) = worker(&store, "taker");
    dead.take_leases().await.unwrap();
    taker.take_leases().await.unwrap();
    assert!(taker.take_leases().await.unwrap().is_empty(), "pending");
    tokio::time::advance(FAILOVER + Duration::from_secs(1)).await;
    taker.take_leases().await.unwrap();
    assert_eq!(taker.held_keys().len(), 2);
    for lease in store.list_leases().await.unwrap() {
        assert_eq!(lease.checkpoint_owner, None);
        assert_eq!(lease.lease_owner.as_deref(), Some("taker"));
    }
}

/// A handoff the old owner completed just before the new owner shut down (before its taker
/// picked the lease up) leaves no lease in the name of a worker that is gone.
#[tokio::test(start_paused = true)]
async fn a_worker_shutting_down_releases_leases_handed_to_it_but_not_yet_taken() {
    let store = store_with(2).await;
    let (a, mut a_events) = worker(&store, "a");
    let (b, _b_events) = worker(&store, "b");
    a.take_leases().await.unwrap();
    while a_events.try_recv().is_ok() {}
    b.take_leases().await.unwrap();
    a.renew_all().await;
    let Ok(LeaseEvent::HandoffRequested(key)) = a_events.try_recv() else {
        panic!("a was asked for a lease");
    };
    assert!(a.complete_handoff(&key).await.unwrap());
    // b shuts down before its next taker run.
    b.release_all().await;
    let lease = store.get_lease(&key).await.unwrap().unwrap();
    assert_eq!(lease.lease_owner, None, "released for the fleet");
}

/// An owner that shuts down before it noticed it was asked for a lease completes the handoff
/// (the lease goes to the worker that asked) instead of leaving it half handed over.
#[tokio::test(start_paused = true)]
async fn an_owner_shutting_down_completes_a_handoff_it_had_not_noticed() {
    let store = store_with(2).await;
    let (a, mut a_events) = worker(&store, "a");
    let (b, _b_events) = worker(&store, "b");
    a.take_leases().await.unwrap();
    while a_events.try_recv().is_ok() {}
    b.take_leases().await.unwrap();
    a.release_all().await;
    for lease in store.list_leases().await.unwrap() {
        assert_eq!(lease.checkpoint_owner, None, "{}", lease.lease_key);
        assert_ne!(
            lease.lease_owner.as_deref(),
            Some("a"),
            "{}",
            lease.lease_key
        );
    }
    // The lease a was asked for is b's to take at once.
    assert_eq!(b.take_leases().await.unwrap().len(), 2);
}
