//! Checkpointer rules against a real lease coordinator on the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use kcl_checkpoint::{CheckpointError, Checkpointer, ExtendedSequenceNumber};
use kcl_lease::{
    InMemoryLeaseStore, Lease, LeaseConfig, LeaseCoordinator, LeaseStore, StoredCheckpoint,
};

const KEY: &str = "shardId-000000000000";

async fn setup() -> (Arc<InMemoryLeaseStore>, Arc<LeaseCoordinator>, Checkpointer) {
    let store = Arc::new(InMemoryLeaseStore::new());
    store
        .create_lease_if_absent(&Lease::new(KEY, StoredCheckpoint::new("TRIM_HORIZON")))
        .await
        .unwrap();
    let (coordinator, _events) = LeaseCoordinator::new(
        Arc::clone(&store) as Arc<dyn LeaseStore>,
        "w",
        LeaseConfig::with_failover_time(Duration::from_secs(10)),
    );
    coordinator.take_leases().await.unwrap();
    let checkpointer = Checkpointer::new(
        KEY,
        Arc::clone(&coordinator) as _,
        ExtendedSequenceNumber::TRIM_HORIZON,
    );
    (store, coordinator, checkpointer)
}

async fn stored(store: &InMemoryLeaseStore) -> Lease {
    store.get_lease(KEY).await.unwrap().unwrap()
}

fn seq(n: u64) -> ExtendedSequenceNumber {
    ExtendedSequenceNumber::new(&format!("4959{n:052}"), 0).unwrap()
}

#[tokio::test]
async fn checkpoints_are_bounded_by_the_last_checkpoint_and_the_last_delivered_record() {
    let (store, _c, checkpointer) = setup().await;
    checkpointer.set_largest_permitted(seq(10));
    checkpointer
        .checkpoint_at(&seq(5).sequence_number.to_string(), 0)
        .await
        .unwrap();
    assert_eq!(
        stored(&store).await.checkpoint.unwrap().sequence_number,
        seq(5).sequence_number.to_string()
    );
    // Beyond the last delivered record, or back before the last checkpoint: refused.
    let ahead = checkpointer
        .checkpoint_at(&seq(11).sequence_number.to_string(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(ahead, CheckpointError::OutOfRange { .. }),
        "{ahead}"
    );
    let behind = checkpointer
        .checkpoint_at(&seq(4).sequence_number.to_string(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(behind, CheckpointError::OutOfRange { .. }),
        "{behind}"
    );
    assert!(matches!(
        checkpointer.checkpoint_at("nonsense", 0).await,
        Err(CheckpointError::InvalidSequenceNumber(_))
    ));
    assert!(matches!(
        checkpointer.checkpoint_at("LATEST", 0).await,
        Err(CheckpointError::InvalidSequenceNumber(_))
    ));
    // checkpoint() goes to the last delivered record.
    checkpointer.checkpoint().await.unwrap();
    assert_eq!(checkpointer.last_checkpoint(), seq(10));
    assert_eq!(
        stored(&store).await.checkpoint.unwrap().sequence_number,
        seq(10).sequence_number.to_string()
    );
}

#[tokio::test]
async fn shard_end_is_checkpointed_once_the_shard_is_read_to_its_end() {
    let (store, _c, checkpointer) = setup().await;
    assert!(checkpointer.checkpoint_at("SHARD_END", 0).await.is_err());
    checkpointer.set_shard_end();
    checkpointer.checkpoint().await.unwrap();
    assert!(stored(&store).await.is_shard_end());
}

#[tokio::test]
async fn prepared_checkpoints_store_pending_state_until_committed() {
    let (store, _c, checkpointer) = setup().await;
    checkpointer.set_largest_permitted(seq(20));
    let target = seq(15).sequence_number.to_string();
    let prepared = checkpointer
        .prepare_checkpoint(&target, 2, Some(b"app-state".to_vec()))
        .await
        .unwrap();
    let lease = stored(&store).await;
    assert_eq!(lease.checkpoint.unwrap().sequence_number, "TRIM_HORIZON");
    assert_eq!(
        lease.pending_checkpoint.as_ref().unwrap().sequence_number,
        target
    );
    assert_eq!(lease.pending_checkpoint.unwrap().sub_sequence_number, 2);
    assert_eq!(
        lease.pending_checkpoint_state.as_deref(),
        Some(&b"app-state"[..])
    );
    prepared.commit().await.unwrap();
    let lease = stored(&store).await;
    assert_eq!(lease.checkpoint.unwrap().sequence_number, target);
    assert!(lease.pending_checkpoint.is_none() && lease.pending_checkpoint_state.is_none());
}

#[tokio::test]
async fn a_lost_lease_fails_checkpoints_with_a_typed_error() {
    let (store, coordinator, checkpointer) = setup().await;
    checkpointer.set_largest_permitted(seq(3));
    // Another worker takes the lease behind this one's back.
    let lease = stored(&store).await;
    assert!(store.take_lease(&lease, "thief").await.unwrap());
    let err = checkpointer.checkpoint().await.unwrap_err();
    assert!(matches!(err, CheckpointError::LeaseLost(_)), "{err}");
    assert_eq!(err.java_exception_name(), "ShutdownException");
    assert!(coordinator.held_keys().is_empty());
    assert_eq!(
        stored(&store).await.checkpoint.unwrap().sequence_number,
        "TRIM_HORIZON"
    );
    checkpointer.shut_down();
    assert!(matches!(
        checkpointer.checkpoint().await,
        Err(CheckpointError::LeaseLost(_))
    ));
}
