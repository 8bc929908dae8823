//! Seeded crashes and injected failures around the metadata journal and its compaction: after
//! every restart, the metadata is what some prefix of the attempted changes made it, that
//! prefix holds every change whose save returned Ok, and recovery itself never fails.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dependents::{NoRecord, NothingSaved};
use super::meta::{Change, JournalEntry, MetaFiles, SavedStream, Snapshot};
use crate::durable::memory::{self, History, MemoryStorage, OpKind};
use crate::durable::storage::Storage;

/// Each stream by name: its epoch and retention, which every change sets to a value of its own.
type Streams = BTreeMap<String, (u64, u32)>;

/// The metadata as recovery sees it: the counter of the last change it holds, and the streams.
type State = (u64, Streams);

fn root() -> PathBuf {
    PathBuf::from("/data/kinesis")
}

fn saved(name: &str, (epoch, retention_hours): (u64, u32)) -> SavedStream {
    super::meta::tests::stream(name, epoch, retention_hours)
}

fn snapshot_of((counter, streams): &State) -> Snapshot<NothingSaved> {
    let mut snapshot = Snapshot::of(&[], NothingSaved {}, *counter, *counter as i64);
    snapshot.streams = streams.iter().map(|(name, s)| saved(name, *s)).collect();
    snapshot
}

/// Opens the metadata as the store does and reads back what it holds.
fn recover(storage: &MemoryStorage) -> io::Result<(MetaFiles, State)> {
    storage.create_dir_all(&root())?;
    let (files, snapshot) = MetaFiles::open::<NothingSaved>(storage.shared(), &root())?;
    let Some(snapshot) = snapshot else {
        return Ok((files, (0, Streams::new())));
    };
    let streams: Streams = snapshot
        .streams
        .iter()
        .map(|s| (s.name.clone(), (s.epoch, s.settings.retention_hours)))
        .collect();
    assert_eq!(streams.len(), snapshot.streams.len(), "a stream twice");
    Ok((files, (snapshot.counter, streams)))
}

/// A change to a stream of a handful: created if it is missing, else changed or removed.
fn change(
    rng: &mut StdRng,
    streams: &mut Streams,
    counter: u64,
    next_epoch: &mut u64,
) -> Change<NoRecord> {
    let name = format!("s{}", rng.gen_range(0..4));
    let retention = u32::try_from(counter).expect("few changes");
    match streams.get(&name).copied() {
        Some((epoch, _)) if rng.gen_bool(0.3) => {
            streams.remove(&name);
            Change::StreamRemoved { name, epoch }
        }
        Some((epoch, _)) => {
            streams.insert(name.clone(), (epoch, retention));
            Change::Stream(saved(&name, (epoch, retention)))
        }
        None => {
            *next_epoch += 1;
            streams.insert(name.clone(), (*next_epoch, retention));
            Change::Stream(saved(&name, (*next_epoch, retention)))
        }
    }
}

fn run(seed: u64) {
    let storage = MemoryStorage::new(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut history = History::new((0, Streams::new()));
    let (mut counter, mut next_epoch) = (0, 0);
    for _ in 0..rng.gen_range(2..6) {
        let injected = rng.gen_bool(0.3);
        if injected {
            let kinds = [
                OpKind::Write,
                OpKind::Sync,
                OpKind::Rename,
                OpKind::Create,
                OpKind::Remove,
            ];
            storage.fail(kinds[rng.gen_range(0..kinds.len())], rng.gen_range(0..10));
        } else if rng.gen_bool(0.8) {
            storage.power_off_after(rng.gen_range(1..=90));
        }
        match recover(&storage) {
            Ok((mut files, state)) => {
                history.recovered(state, seed);
                // A low floor makes the journal compact itself every few changes.
                files.compact_above(rng.gen_range(300..3000));
                let mut streams = history.states[0].1.clone();
                for _ in 0..rng.gen_range(1..30) {
                    counter += 1;
                    let made = change(&mut rng, &mut streams, counter, &mut next_epoch);
                    let state = (counter, streams.clone());
                    history.states.push(state.clone());
                    let entry = JournalEntry {
                        counter,
                        clock_ms: counter as i64,
                        change: made,
                    };
                    let saved = match files.save(|| vec![entry], || snapshot_of(&state), true) {
                        Ok(Some(ticket)) => ticket.wait().is_ok(),
                        Ok(None) => true,
                        Err(_) => false,
                    };
                    if saved {
                        history.acknowledged = history.states.len() - 1;
                    }
                    if rng.gen_bool(0.1) {
                        // A compaction outside a save: its failure fails no change.
                        let _ = files.write_snapshot(snapshot_of(&state));
                    }
                }
            }
            Err(err) => assert!(
                injected || storage.is_down(),
                "seed {seed}: recovery failed: {err}"
            ),
        }
        storage.restart(rng.gen_bool(0.7));
    }
    let (_, state) = recover(&storage).expect("recovery");
    history.recovered(state, seed);
}

#[test]
fn acknowledged_changes_survive_any_crash_and_recovery_never_fails() {
    for seed in memory::seeds(300) {
        run(seed);
    }
}

#[test]
fn a_crash_before_the_snapshot_rename_is_synced_keeps_the_old_generation() {
    let storage = MemoryStorage::new(1);
    let (mut files, _) = recover(&storage).unwrap();
    let first = (1, Streams::from([("a".to_owned(), (1, 1))]));
    let entry = JournalEntry::<NoRecord> {
        counter: 1,
        clock_ms: 1,
        change: Change::Stream(saved("a", (1, 1))),
    };
    files
        .save(|| vec![entry], || snapshot_of(&first), true)
        .unwrap()
        .expect("a journal record")
        .wait()
        .unwrap();
    // Create, write and sync the temporary snapshot and rename it: the power goes out before
    // the directory sync that would make the rename durable.
    storage.power_off_after(5);
    let second = (2, Streams::from([("a".to_owned(), (1, 2))]));
    assert!(files.write_snapshot(snapshot_of(&second)).is_err());
    let renamed = storage.contents(Path::new("/data/kinesis/meta.json"));
    assert!(
        renamed.is_some(),
        "the rename happened before the power went out"
    );
    drop(files);
    storage.restart(true);
    let (_, state) = recover(&storage).unwrap();
    assert_eq!(state, first);
}
