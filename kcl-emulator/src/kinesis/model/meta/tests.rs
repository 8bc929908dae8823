//! Tests of the metadata snapshot and journal.

use std::fs;

use super::*;
use crate::durable::storage::disk;
use crate::kinesis::model::dependents::{NoRecord, NothingSaved};

/// A saved stream with no shards: the metadata tests only follow names, epochs and one setting.
pub(crate) fn stream(name: &str, epoch: u64, retention_hours: u32) -> SavedStream {
    let mut settings = StreamSettings::new(0, 0, CapacityMode::Provisioned);
    settings.retention_hours = retention_hours;
    SavedStream {
        name: name.to_owned(),
        epoch,
        settings,
        shards: Vec::new(),
    }
}

fn entry(counter: u64, change: Change<NoRecord>) -> JournalEntry<NoRecord> {
    JournalEntry {
        counter,
        clock_ms: counter as i64,
        change,
    }
}

/// (name, epoch, retention) of every stream in the recovered metadata, and its counter.
fn recovered(root: &Path) -> (Vec<(String, u64, u32)>, u64) {
    let (_, snapshot) = MetaFiles::open::<NothingSaved>(disk(), root).unwrap();
    let snapshot = snapshot.expect("metadata");
    let mut streams: Vec<_> = snapshot
        .streams
        .iter()
        .map(|s| (s.name.clone(), s.epoch, s.settings.retention_hours))
        .collect();
    streams.sort();
    (streams, snapshot.counter)
}

/// Appends `entries` and waits until they are durable.
fn append_now(files: &mut MetaFiles, entries: &[JournalEntry<NoRecord>]) {
    files.append(entries).unwrap().wait().unwrap();
}

/// The length of the whole frames a journal starts with (zeros are laid down past them).
fn valid_bytes(journal: &[u8]) -> usize {
    frame::frames(journal, 1..=usize::MAX)
        .last()
        .map_or(0, |f| f.end)
}

fn journal_of(root: &Path, generation: u64) -> PathBuf {
    journal_path(root, generation)
}

#[test]
fn the_journal_replays_in_order_and_a_torn_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, snapshot) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    assert!(snapshot.is_none());
    append_now(
        &mut files,
        &[
            entry(1, Change::Stream(stream("a", 1, 24))),
            entry(2, Change::Stream(stream("b", 2, 24))),
        ],
    );
    append_now(&mut files, &[entry(3, Change::Stream(stream("a", 1, 48)))]);
    // A removal names the epoch: it never removes a later stream of the same name.
    append_now(
        &mut files,
        &[entry(
            4,
            Change::StreamRemoved {
                name: "b".to_owned(),
                epoch: 0,
            },
        )],
    );
    append_now(&mut files, &[entry(9, Change::Clock)]);
    drop(files);
    let expected = vec![("a".to_owned(), 1, 48), ("b".to_owned(), 2, 24)];
    assert_eq!(recovered(dir.path()), (expected.clone(), 9));

    // A crash in the middle of an append leaves part of a frame, over the zeros laid down
    // ahead or (in a journal written before they were) at the end of the file: every cut of
    // a whole record is ignored, the records before it stand, and the tail is zeroed.
    let journal = journal_of(dir.path(), 0);
    let laid_down = fs::read(&journal).unwrap();
    let valid = valid_bytes(&laid_down);
    assert!(laid_down[valid..].iter().all(|&b| b == 0));
    let mut last = Vec::new();
    let payload = serde_json::to_vec(&entry(10, Change::Stream(stream("c", 3, 24)))).unwrap();
    frame::encode(&mut last, &payload);
    let appended = |cut: usize| [&laid_down[..valid], &last[..cut]].concat();
    for cut in [1, 7, 8, 9, last.len() / 2, last.len() - 1] {
        let mut in_place = laid_down.clone();
        in_place[valid..valid + cut].copy_from_slice(&last[..cut]);
        for (torn, zeroed) in [
            (in_place, laid_down.clone()),
            (appended(cut), [&laid_down[..valid], &vec![0; cut]].concat()),
        ] {
            fs::write(&journal, &torn).unwrap();
            assert_eq!(recovered(dir.path()), (expected.clone(), 9), "cut {cut}");
            assert_eq!(
                fs::read(&journal).unwrap(),
                zeroed,
                "the torn tail is zeroed"
            );
        }
    }
    // Appends after the cut are read back: they do not sit behind garbage.
    fs::write(&journal, appended(last.len() - 1)).unwrap();
    let (mut files, _) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    append_now(&mut files, &[entry(11, Change::Stream(stream("d", 4, 24)))]);
    drop(files);
    let (streams, counter) = recovered(dir.path());
    assert_eq!(counter, 11);
    assert!(streams.contains(&("d".to_owned(), 4, 24)));
}

#[test]
fn compaction_starts_a_new_generation_and_a_stale_journal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, _) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    append_now(&mut files, &[entry(1, Change::Stream(stream("a", 1, 24)))]);
    let stale = fs::read(journal_of(dir.path(), 0)).unwrap();
    let mut snapshot = Snapshot::of(&[], NothingSaved {}, 5, 5);
    snapshot.streams.push(stream("a", 1, 72));
    files.write_snapshot(snapshot).unwrap();
    assert!(!journal_of(dir.path(), 0).exists());
    assert!(!files.should_compact());
    append_now(&mut files, &[entry(6, Change::Stream(stream("b", 2, 24)))]);
    assert!(journal_of(dir.path(), 1).exists());
    drop(files);
    // A crash between the snapshot's rename and the old journal's deletion leaves the old
    // journal behind: replaying it would undo changes the snapshot holds.
    fs::write(journal_of(dir.path(), 0), &stale).unwrap();
    let expected = vec![("a".to_owned(), 1, 72), ("b".to_owned(), 2, 24)];
    assert_eq!(recovered(dir.path()), (expected, 6));
    assert!(
        !journal_of(dir.path(), 0).exists(),
        "the stale journal is removed"
    );
}

#[test]
fn a_failed_journal_write_fails_its_change_and_calls_for_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, _) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    // A directory where the journal file belongs: the journal cannot be created.
    fs::create_dir(journal_of(dir.path(), 0)).unwrap();
    let first = files.append(&[entry(1, Change::Stream(stream("a", 1, 24)))]);
    assert!(first.unwrap().wait().is_err());
    assert!(files.needs_snapshot());
    // Records queued after the failure fail too: they would sit behind an unknown tail.
    let second = files.append(&[entry(2, Change::Stream(stream("b", 2, 24)))]);
    assert!(second.unwrap().wait().is_err());
    fs::remove_dir(journal_of(dir.path(), 0)).unwrap();
    let mut snapshot = Snapshot::of(&[], NothingSaved {}, 2, 2);
    snapshot.streams.push(stream("a", 1, 24));
    files.write_snapshot(snapshot).unwrap();
    assert!(!files.needs_snapshot());
    append_now(&mut files, &[entry(3, Change::Stream(stream("c", 3, 24)))]);
    drop(files);
    let expected = vec![("a".to_owned(), 1, 24), ("c".to_owned(), 3, 24)];
    assert_eq!(recovered(dir.path()), (expected, 3));
}

#[test]
fn a_snapshot_written_before_the_journal_existed_loads_and_is_continued() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = serde_json::to_value(Snapshot::of(&[], NothingSaved {}, 7, 7)).unwrap();
    let fields = old.as_object_mut().unwrap();
    fields.remove("generation");
    fields.insert(
        "streams".to_owned(),
        serde_json::to_value([stream("old", 1, 24)]).unwrap(),
    );
    fs::write(
        dir.path().join(META_FILE),
        serde_json::to_vec(&old).unwrap(),
    )
    .unwrap();
    assert_eq!(recovered(dir.path()), (vec![("old".to_owned(), 1, 24)], 7));
    let (mut files, _) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    append_now(
        &mut files,
        &[entry(8, Change::Stream(stream("new", 2, 24)))],
    );
    drop(files);
    assert_eq!(
        recovered(dir.path()),
        (
            vec![("new".to_owned(), 2, 24), ("old".to_owned(), 1, 24)],
            8
        )
    );
}

#[test]
fn the_journal_is_compacted_once_it_outgrows_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, _) = MetaFiles::open::<NothingSaved>(disk(), dir.path()).unwrap();
    let mut big = stream("a", 1, 24);
    big.settings.resource_policy = Some("x".repeat(64 * 1024));
    let mut appended = 0;
    while !files.should_compact() {
        append_now(&mut files, &[entry(1, Change::Stream(stream("a", 1, 24)))]);
        append_now(&mut files, &[entry(1, Change::Stream(big.clone()))]);
        appended += 1;
    }
    // The floor keeps small journals from being compacted every few changes.
    assert!(appended * 64 * 1024 >= MIN_COMPACT_BYTES);
    // Past the floor, the bound is the snapshot's size: a change costs the same on average
    // however many streams the snapshot holds.
    let mut snapshot = Snapshot::of(&[], NothingSaved {}, 1, 1);
    snapshot.streams = vec![big.clone(); 48];
    files.write_snapshot(snapshot).unwrap();
    let snapshot_bytes = fs::metadata(dir.path().join(META_FILE)).unwrap().len();
    assert!(snapshot_bytes > 2 * MIN_COMPACT_BYTES);
    let mut journal_bytes = 0;
    while journal_bytes <= snapshot_bytes {
        assert!(!files.should_compact());
        append_now(&mut files, &[entry(2, Change::Stream(big.clone()))]);
        journal_bytes = valid_bytes(&fs::read(journal_of(dir.path(), 1)).unwrap()) as u64;
    }
    assert!(files.should_compact());
}
