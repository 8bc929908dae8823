use super::*;
use bytes::Bytes;

/// Shards as plain vectors of records.
struct Vectors(Vec<Vec<Record>>);

impl Vectors {
    fn new(shards: &[&[u64]]) -> Vectors {
        Vectors(
            shards
                .iter()
                .map(|counters| {
                    counters
                        .iter()
                        .map(|&counter| Record {
                            counter,
                            arrival_ms: counter as i64 * 10,
                            partition_key: Arc::from("k"),
                            data: Bytes::from(counter.to_string()),
                        })
                        .collect()
                })
                .collect(),
        )
    }
}

impl RecordSource for Vectors {
    fn shard_count(&self) -> u32 {
        self.0.len() as u32
    }
    fn record(&self, shard: u32, counter: u64) -> Option<Record> {
        self.0[shard as usize]
            .iter()
            .find(|r| r.counter == counter)
            .cloned()
    }
    fn records_from(&self, shard: u32, from: u64, limit: usize) -> Vec<Record> {
        self.0[shard as usize]
            .iter()
            .filter(|r| r.counter >= from)
            .take(limit)
            .cloned()
            .collect()
    }
}

fn request(now_ms: i64, limit: usize) -> ReceiveRequest {
    ReceiveRequest {
        now_ms,
        limit,
        visibility_ms: 100,
        queue_serial: 7,
    }
}

fn counters(delivered: &[Delivered]) -> Vec<u64> {
    let mut c: Vec<u64> = delivered.iter().map(|d| d.record.counter).collect();
    c.sort_unstable();
    c
}

#[test]
fn every_record_is_delivered_once_until_its_visibility_lapses() {
    let source = Vectors::new(&[&[1, 3, 5], &[2, 4]]);
    let mut delivery = Delivery::default();
    let start = Start::AfterCounter(0);
    let first = delivery.receive(&source, start, Some(3), &request(0, 3));
    let second = delivery.receive(&source, start, Some(3), &request(0, 10));
    let mut all = counters(&first);
    all.extend(counters(&second));
    all.sort_unstable();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    assert!(delivery
        .receive(&source, start, Some(3), &request(50, 10))
        .is_empty());
    assert_eq!(delivery.in_flight(50), 5);
    // Acknowledged records never come back; the others do once visible again.
    for d in &first {
        delivery
            .acknowledge(&source, &d.handle, Path::Normal)
            .unwrap();
    }
    let again = delivery.receive(&source, start, Some(3), &request(100, 10));
    assert_eq!(counters(&again), counters(&second));
    assert!(again.iter().all(|d| d.receive_count == 2));
}

#[test]
fn the_starting_position_limits_what_is_delivered() {
    let source = Vectors::new(&[&[1, 3, 5], &[2, 4]]);
    let latest =
        Delivery::default().receive(&source, Start::AfterCounter(3), None, &request(0, 10));
    assert_eq!(counters(&latest), [4, 5]);
    let from_time =
        Delivery::default().receive(&source, Start::ArrivedFrom(20), None, &request(0, 10));
    assert_eq!(counters(&from_time), [2, 3, 4, 5]);
}

#[test]
fn handles_go_stale_and_acknowledgements_are_final() {
    let source = Vectors::new(&[&[1]]);
    let mut delivery = Delivery::default();
    let start = Start::AfterCounter(0);
    let old = delivery.receive(&source, start, None, &request(0, 1))[0].handle;
    let new = delivery.receive(&source, start, None, &request(100, 1))[0].handle;
    assert!(matches!(
        delivery.acknowledge(&source, &old, Path::Normal),
        Err(EntryError::Invalid(_))
    ));
    delivery.acknowledge(&source, &new, Path::Normal).unwrap();
    assert!(matches!(
        delivery.acknowledge(&source, &new, Path::Normal),
        Err(EntryError::NotFound(_))
    ));
    assert!(delivery
        .receive(&source, start, None, &request(1_000, 1))
        .is_empty());
    assert_eq!(ReceiptHandle::decode(&new.encode()), Some(new));
    assert_eq!(ReceiptHandle::decode("not a handle"), None);
}

#[test]
fn records_past_max_receive_count_become_dead_letters_until_restored() {
    let source = Vectors::new(&[&[1]]);
    let mut delivery = Delivery::default();
    let start = Start::AfterCounter(0);
    for at in [0, 100] {
        assert_eq!(
            delivery
                .receive(&source, start, Some(2), &request(at, 1))
                .len(),
            1
        );
    }
    // Received twice, visible again: a dead letter now, not a third delivery.
    assert!(delivery
        .receive(&source, start, Some(2), &request(200, 1))
        .is_empty());
    let dead = delivery.receive_dead_letters(&source, Some(2), &request(200, 1));
    assert_eq!(dead.len(), 1);
    assert!(matches!(
        delivery.acknowledge(&source, &dead[0].handle, Path::Normal),
        Err(EntryError::Invalid(_))
    ));
    delivery.restore(&source, &dead[0].handle, 250).unwrap();
    // The spent dead-letter handle, and a forged one naming no receive, are refused.
    assert!(matches!(
        delivery.restore(&source, &dead[0].handle, 250),
        Err(EntryError::Invalid(_))
    ));
    let forged = ReceiptHandle {
        receive_id: 0,
        ..dead[0].handle
    };
    assert!(matches!(
        delivery.acknowledge(&source, &forged, Path::Normal),
        Err(EntryError::Invalid(_))
    ));
    let back = delivery.receive(&source, start, Some(2), &request(250, 1));
    assert_eq!(
        back[0].receive_count, 1,
        "a restore resets the receive count"
    );
    delivery
        .acknowledge(&source, &back[0].handle, Path::Normal)
        .unwrap();
    assert!(delivery
        .receive_dead_letters(&source, Some(2), &request(1_000, 1))
        .is_empty());
}

#[test]
fn a_record_that_became_a_dead_letter_is_not_acknowledged_on_the_normal_path() {
    let source = Vectors::new(&[&[1]]);
    let mut delivery = Delivery::default();
    let start = Start::AfterCounter(0);
    let got = delivery.receive(&source, start, Some(1), &request(0, 1));
    // Its visibility lapsed after its one allowed receive: a dead letter from then on,
    // whether or not any receive has run since.
    delivery.settle(100, Some(1));
    assert!(matches!(
        delivery.acknowledge(&source, &got[0].handle, Path::Normal),
        Err(EntryError::Invalid(_))
    ));
    assert_eq!(
        delivery
            .receive_dead_letters(&source, Some(1), &request(100, 1))
            .len(),
        1
    );
}

#[test]
fn visibility_changes_and_trimmed_records() {
    let mut source = Vectors::new(&[&[1, 2]]);
    let mut delivery = Delivery::default();
    let start = Start::AfterCounter(0);
    let got = delivery.receive(&source, start, None, &request(0, 2));
    delivery
        .change_visibility(&source, &got[0].handle, Path::Normal, 10, 0)
        .unwrap();
    let again = delivery.receive(&source, start, None, &request(10, 2));
    assert_eq!(counters(&again), [got[0].record.counter]);
    // Retention trims record 1 and 2: pending entries for them go away.
    source.0[0].clear();
    assert!(delivery
        .receive(&source, start, None, &request(1_000, 2))
        .is_empty());
    assert!(matches!(
        delivery.acknowledge(&source, &got[1].handle, Path::Normal),
        Err(EntryError::NotFound(_))
    ));
}

#[test]
fn the_snapshot_round_trips() {
    let source = Vectors::new(&[&[1, 2, 3]]);
    let mut delivery = Delivery::default();
    delivery.receive(&source, Start::AfterCounter(0), None, &request(0, 2));
    let json = serde_json::to_string(&delivery).unwrap();
    assert_eq!(serde_json::from_str::<Delivery>(&json).unwrap(), delivery);
}

/// A delivery state as recovery sees it: through its stored form.
fn stored(delivery: &Delivery) -> Delivery {
    serde_json::from_str(&serde_json::to_string(delivery).unwrap()).unwrap()
}

/// A delta as recovery reads it back from a journal record.
fn through_journal(delta: DeliveryDelta) -> DeliveryDelta {
    serde_json::from_str(&serde_json::to_string(&delta).unwrap()).unwrap()
}

#[test]
fn deltas_replayed_over_a_snapshot_rebuild_the_state_one_by_one_or_merged() {
    let mut source = Vectors::new(&[&[1, 3, 5, 7], &[2, 4, 6]]);
    let start = Start::AfterCounter(0);
    let mut live = Delivery::default();
    live.receive(&source, start, Some(2), &request(0, 2));
    let snapshot = stored(&live);
    let mut replayed = snapshot.clone();
    let mut merged: Option<DeliveryDelta> = None;
    let mut step = |live: &Delivery, before: &Delivery| {
        let delta = live.delta_since(before);
        replayed.apply(through_journal(delta.clone()));
        assert_eq!(&replayed, live);
        match &mut merged {
            Some(merged) => merged.then(delta),
            None => merged = Some(delta),
        }
    };
    // Every kind of change: new records, redeliveries, acknowledgements, visibility changes,
    // dead letters, restores and records the stream trimmed.
    let before = live.clone();
    let got = live.receive(&source, start, Some(2), &request(0, 3));
    step(&live, &before);
    let before = live.clone();
    live.acknowledge(&source, &got[0].handle, Path::Normal)
        .unwrap();
    live.change_visibility(&source, &got[1].handle, Path::Normal, 10, 0)
        .unwrap();
    step(&live, &before);
    let before = live.clone();
    let again = live.receive(&source, start, Some(2), &request(100, 10));
    assert!(!again.is_empty());
    step(&live, &before);
    let before = live.clone();
    live.settle(300, Some(2));
    let dead = live.receive_dead_letters(&source, Some(2), &request(300, 1));
    live.restore(&source, &dead[0].handle, 300).unwrap();
    step(&live, &before);
    let before = live.clone();
    source.0[0].clear();
    live.receive(&source, start, Some(2), &request(1_000, 10));
    step(&live, &before);
    // One delta folded from all of them does what they did in turn.
    let mut at_once = snapshot;
    at_once.apply(through_journal(merged.unwrap()));
    assert_eq!(at_once, live);
}

#[test]
fn a_delta_holds_only_what_changed() {
    let source = Vectors::new(&[(1..=200).collect::<Vec<u64>>().as_slice()]);
    let start = Start::AfterCounter(0);
    let mut delivery = Delivery::default();
    delivery.receive(&source, start, None, &request(0, 100));
    let before = delivery.clone();
    let got = delivery.receive(&source, start, None, &request(0, 10));
    let received = serde_json::to_string(&delivery.delta_since(&before)).unwrap();
    let before = delivery.clone();
    for d in &got {
        delivery
            .acknowledge(&source, &d.handle, Path::Normal)
            .unwrap();
    }
    let acknowledged = serde_json::to_string(&delivery.delta_since(&before)).unwrap();
    let whole = serde_json::to_string(&delivery).unwrap();
    // 110 records in flight; the deltas name the 10 that changed.
    assert!(
        received.len() * 5 < whole.len(),
        "{} vs {}",
        received.len(),
        whole.len()
    );
    assert!(acknowledged.len() * 20 < whole.len(), "{acknowledged}");
}

#[test]
fn unjournaled_changes_fold_and_a_whole_record_covers_them() {
    let source = Vectors::new(&[&[1, 2]]);
    let start = Start::AfterCounter(0);
    let mut delivery = Delivery::default();
    let before = delivery.clone();
    delivery.receive(&source, start, None, &request(0, 1));
    let first = delivery.delta_since(&before);
    let before = delivery.clone();
    delivery.receive(&source, start, None, &request(0, 1));
    let second = delivery.delta_since(&before);
    let mut noted = Unjournaled::Nothing;
    noted.add_delivery(first.clone());
    noted.add_delivery(second.clone());
    let mut both = first;
    both.then(second.clone());
    assert_eq!(noted, Unjournaled::Delivery(both));
    let mut whole = Unjournaled::Whole;
    whole.add_delivery(second);
    assert_eq!(whole, Unjournaled::Whole);
}
