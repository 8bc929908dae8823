//! Seeded crashes and injected failures around a shard's segment log, appended to through the
//! group committer, rolled over often and trimmed by retention: after every restart the records
//! recovered are a run of the attempted ones, in order, with nothing missing or added inside
//! it; it ends no earlier than the last acknowledged record and starts no later than retention
//! allowed; and recovery itself never fails.

use std::path::PathBuf;
use std::sync::mpsc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::durable::memory::{self, History, MemoryStorage, OpKind};

fn dir() -> PathBuf {
    PathBuf::from("/data/kinesis/stream-1/shardId-000000000000")
}

/// Holds the committer between batches: what is queued while it is held is written as one
/// batch, so a seed makes the same operations, and crashes at the same one, in every run.
struct Gate {
    /// A log on a machine of its own, so holding the committer costs the one under test nothing.
    bystander: SharedShardFiles,
}

impl Gate {
    fn new() -> Gate {
        let storage = MemoryStorage::new(0);
        let (files, _) = ShardFiles::open(storage.shared(), &dir()).expect("an empty machine");
        Gate {
            bystander: SharedLog::new(files),
        }
    }

    /// Parks the idle committer until the returned sender is dropped.
    fn hold(&self, committer: &Committer) -> mpsc::Sender<()> {
        let (parked, is_parked) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let nothing = Append {
            first_counter: 0,
            newest_arrival_ms: 0,
            bytes: Vec::new(),
        };
        committer.submit(
            &self.bystander,
            nothing,
            Box::new(move |_| {
                let _ = parked.send(());
                let _ = released.recv();
            }),
        );
        is_parked.recv().expect("the committer runs");
        release
    }
}

/// Every record appended since the machine was made, and which of them can still be on disk.
struct Attempted {
    records: Vec<Record>,
    /// The records before this one were gone at the last recovery, and cannot come back.
    floor: usize,
    /// Retention may have removed the records before this one.
    expired: usize,
}

impl Attempted {
    /// Checks `recovered` and returns how many of the attempted records it accounts for (its
    /// end in `records`); the records after that were lost, and are forgotten.
    fn recovered(&mut self, recovered: &[Record], acknowledged: usize, seed: u64) -> usize {
        let counters: Vec<u64> = recovered.iter().map(|r| r.counter).collect();
        assert!(
            counters.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: counters out of order: {counters:?}"
        );
        let start = match recovered.first() {
            Some(first) => {
                let start = self
                    .records
                    .iter()
                    .position(|r| r.counter == first.counter)
                    .unwrap_or_else(|| {
                        panic!(
                            "seed {seed}: recovered counter {} never attempted",
                            first.counter
                        )
                    });
                let attempted = self.records.get(start..start + recovered.len());
                assert!(
                    attempted == Some(recovered),
                    "seed {seed}: recovered {counters:?}, not a run of the attempted records"
                );
                start
            }
            // Nothing left: every acknowledged record must have been up for retention.
            None => acknowledged,
        };
        assert!(
            (self.floor..=self.expired).contains(&start),
            "seed {seed}: recovery starts at record {start}; records {}..{} could be gone",
            self.floor,
            self.expired
        );
        let end = start + recovered.len();
        self.records.truncate(end);
        self.floor = start;
        self.expired = start;
        end
    }
}

/// Appends `batches` batches of a few appends of a few records each, acknowledging in
/// `history` what the committer acknowledges, with retention now and then. Stops once the log
/// refuses writes.
fn append_rounds(
    rng: &mut StdRng,
    committer: &Committer,
    gate: &Gate,
    files: &SharedShardFiles,
    attempted: &mut Attempted,
    history: &mut History<usize>,
    now: &mut i64,
) {
    for _ in 0..rng.gen_range(1..10) {
        let mut appends = Vec::new();
        for _ in 0..rng.gen_range(1..5) {
            *now += rng.gen_range(0..3);
            let mut bytes = Vec::new();
            let first_counter = attempted.records.last().map_or(1, |r| r.counter + 1);
            for counter in first_counter..first_counter + rng.gen_range(1..4) {
                let data: Vec<u8> = (0..rng.gen_range(0..120)).map(|_| rng.gen()).collect();
                let record = Record {
                    counter,
                    arrival_ms: *now,
                    partition_key: Arc::from(format!("key-{}", rng.gen_range(0..100))),
                    data: Bytes::from(data),
                };
                encode_frame(&mut bytes, &record);
                attempted.records.push(record);
                history.states.push(attempted.records.len());
            }
            let append = Append {
                first_counter,
                newest_arrival_ms: *now,
                bytes,
            };
            appends.push((append, history.states.len() - 1));
        }
        let held = gate.hold(committer);
        let tickets: Vec<_> = appends
            .into_iter()
            .map(|(append, state)| (committer.queue(files, append), state))
            .collect();
        drop(held);
        for (ticket, state) in tickets {
            if ticket.wait().is_ok() {
                history.acknowledged = state;
            }
        }
        if rng.gen_bool(0.2) {
            let oldest = attempted.floor;
            let newest = attempted.records.len() - 1;
            let cutoff = attempted.records[rng.gen_range(oldest..=newest)].arrival_ms + 1;
            // A failed delete fails no append: the records were only up for deletion.
            let _ = files.with(|files| files.drop_expired(cutoff));
            let up_for_deletion = attempted.records.partition_point(|r| r.arrival_ms < cutoff);
            attempted.expired = attempted.expired.max(up_for_deletion);
        }
        if files.has_failed() {
            return;
        }
    }
}

fn run(seed: u64) {
    let storage = MemoryStorage::new(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let committer = Committer::start("segment-crash").expect("a committer thread");
    let gate = Gate::new();
    let mut attempted = Attempted {
        records: Vec::new(),
        floor: 0,
        expired: 0,
    };
    let mut history = History::new(0);
    let mut now = 1_700_000_000_000;
    for _ in 0..rng.gen_range(2..6) {
        let injected = rng.gen_bool(0.3);
        if injected {
            let kinds = [OpKind::Write, OpKind::Sync, OpKind::Create, OpKind::Remove];
            storage.fail(kinds[rng.gen_range(0..kinds.len())], rng.gen_range(0..10));
        } else if rng.gen_bool(0.8) {
            storage.power_off_after(rng.gen_range(1..=60));
        }
        match ShardFiles::open(storage.shared(), &dir()) {
            Ok((mut files, recovered)) => {
                let acknowledged = history.states[history.acknowledged];
                let end = attempted.recovered(&recovered, acknowledged, seed);
                history.recovered(end, seed);
                // Segments of a few records each: appends roll over to new ones all the time.
                files.roll_over_at(rng.gen_range(100..1500));
                let files = SharedLog::new(files);
                append_rounds(
                    &mut rng,
                    &committer,
                    &gate,
                    &files,
                    &mut attempted,
                    &mut history,
                    &mut now,
                );
            }
            Err(err) => assert!(
                injected || storage.is_down(),
                "seed {seed}: recovery failed: {err}"
            ),
        }
        storage.restart(true);
    }
    let (_, recovered) = ShardFiles::open(storage.shared(), &dir()).expect("recovery");
    let acknowledged = history.states[history.acknowledged];
    let end = attempted.recovered(&recovered, acknowledged, seed);
    history.recovered(end, seed);
}

#[test]
fn acknowledged_records_survive_any_crash_and_recovery_never_fails() {
    for seed in memory::seeds(300) {
        run(seed);
    }
}
