//! Ages and moves seen by watching the table.
//!
//! The lease table holds no timestamps: workers judge expiry by when they saw the counter
//! change, on their own clock. The `kcl` command does the same: a renewal is a counter change
//! it saw, a checkpoint a checkpoint change it saw, so ages are known to within one scan, and
//! "more than the time watched" when nothing changed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kcl_lease::{Lease, StoredCheckpoint};

use crate::table::Snapshot;

/// How many lease moves the watcher remembers.
const MOVES_KEPT: usize = 10;

/// What was seen of one lease.
#[derive(Debug, Clone)]
struct Seen {
    counter: u64,
    owner: Option<String>,
    checkpoint: Option<StoredCheckpoint>,
    renewed: Option<Instant>,
    checkpointed: Option<Instant>,
}

/// A lease that changed owner between two scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// When it was seen, epoch milliseconds.
    pub at_epoch_ms: u64,
    /// The lease.
    pub lease_key: String,
    /// The owner before (`None`: unowned).
    pub from: Option<String>,
    /// The owner after.
    pub to: Option<String>,
}

/// An age as far as watching tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// The change was seen this long ago.
    Seen(Duration),
    /// No change in the time watched, which was this long.
    Over(Duration),
    /// Watched for no time (one scan).
    Unknown,
}

impl Age {
    /// `1.2s`, `>5.0s`, or `-`.
    pub fn label(&self) -> String {
        match self {
            Age::Seen(age) => format!("{:.1}s", age.as_secs_f64()),
            Age::Over(watched) => format!(">{:.1}s", watched.as_secs_f64()),
            Age::Unknown => "-".to_owned(),
        }
    }

    /// Milliseconds for JSON; a lower bound for [`Age::Over`] (see `ageIsLowerBound`).
    pub fn millis(&self) -> Option<u64> {
        match self {
            Age::Seen(age) | Age::Over(age) => Some(age.as_millis() as u64),
            Age::Unknown => None,
        }
    }
}

/// Remembers each lease across scans.
#[derive(Debug)]
pub struct Observer {
    started: Instant,
    seen: HashMap<String, Seen>,
    moves: VecDeque<Move>,
    scans: u32,
}

impl Observer {
    /// An observer that starts watching now.
    pub fn new(now: Instant) -> Observer {
        Observer {
            started: now,
            seen: HashMap::new(),
            moves: VecDeque::new(),
            scans: 0,
        }
    }

    /// Takes in a scan made at `now`.
    pub fn observe(&mut self, snapshot: &Snapshot, now: Instant) {
        self.scans += 1;
        for lease in snapshot.leases() {
            match self.seen.get_mut(&lease.lease_key) {
                None => {
                    self.seen.insert(
                        lease.lease_key.clone(),
                        Seen {
                            counter: lease.lease_counter,
                            owner: lease.lease_owner.clone(),
                            checkpoint: lease.checkpoint.clone(),
                            renewed: None,
                            checkpointed: None,
                        },
                    );
                }
                Some(seen) => {
                    if seen.counter != lease.lease_counter {
                        seen.counter = lease.lease_counter;
                        seen.renewed = Some(now);
                    }
                    if seen.checkpoint != lease.checkpoint {
                        seen.checkpoint = lease.checkpoint.clone();
                        seen.checkpointed = Some(now);
                    }
                    if seen.owner != lease.lease_owner {
                        self.moves.push_front(Move {
                            at_epoch_ms: epoch_millis(),
                            lease_key: lease.lease_key.clone(),
                            from: seen.owner.clone(),
                            to: lease.lease_owner.clone(),
                        });
                        self.moves.truncate(MOVES_KEPT);
                        seen.owner = lease.lease_owner.clone();
                    }
                }
            }
        }
    }

    /// Since the lease's counter last changed (any renewal, take or checkpoint).
    pub fn renewal_age(&self, lease: &Lease, now: Instant) -> Age {
        self.age(self.seen.get(&lease.lease_key).and_then(|s| s.renewed), now)
    }

    /// Since the lease's checkpoint last changed.
    pub fn checkpoint_age(&self, lease: &Lease, now: Instant) -> Age {
        self.age(
            self.seen.get(&lease.lease_key).and_then(|s| s.checkpointed),
            now,
        )
    }

    fn age(&self, at: Option<Instant>, now: Instant) -> Age {
        match at {
            Some(at) => Age::Seen(now.saturating_duration_since(at)),
            // One scan shows no change, whatever the time since it.
            None if self.scans >= 2 => Age::Over(now.saturating_duration_since(self.started)),
            None => Age::Unknown,
        }
    }

    /// Lease moves seen, newest first.
    pub fn moves(&self) -> impl Iterator<Item = &Move> {
        self.moves.iter()
    }
}

/// Wall-clock time, epoch milliseconds.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lays out rows under headers in aligned columns.
pub fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A checkpoint for a table cell, whole so that it can be pasted into `checkpoint set`;
/// `/n` marks a sub-sequence number (a KPL sub-record).
pub fn checkpoint_label(checkpoint: Option<&StoredCheckpoint>) -> String {
    match checkpoint {
        None => "-".to_owned(),
        Some(cp) if cp.sub_sequence_number > 0 => {
            format!("{}/{}", cp.sequence_number, cp.sub_sequence_number)
        }
        Some(cp) => cp.sequence_number.clone(),
    }
}

/// A duration in milliseconds for a table cell.
pub fn human_millis(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 120_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 7_200_000 {
        format!("{:.1}m", ms as f64 / 60_000.0)
    } else {
        format!("{:.1}h", ms as f64 / 3_600_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Entry;

    #[test]
    fn ages_and_moves_come_from_changes_between_scans() {
        let start = Instant::now();
        let mut observer = Observer::new(start);
        let mut lease = Lease::new("shardId-0", StoredCheckpoint::new("TRIM_HORIZON"));
        lease.lease_owner = Some("w1".into());
        let scan = |lease: &Lease| Snapshot {
            entries: vec![Entry::Lease(lease.clone())],
        };
        observer.observe(&scan(&lease), start);
        assert_eq!(observer.renewal_age(&lease, start), Age::Unknown);
        let later = start + Duration::from_secs(2);
        observer.observe(&scan(&lease), later);
        assert_eq!(
            observer.renewal_age(&lease, later),
            Age::Over(Duration::from_secs(2))
        );
        lease.lease_counter += 1;
        lease.lease_owner = Some("w2".into());
        observer.observe(&scan(&lease), later);
        let now = later + Duration::from_secs(1);
        assert_eq!(
            observer.renewal_age(&lease, now),
            Age::Seen(Duration::from_secs(1))
        );
        assert_eq!(observer.checkpoint_age(&lease, now).label(), ">3.0s");
        let moved: Vec<_> = observer.moves().collect();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].from.as_deref(), Some("w1"));
        assert_eq!(moved[0].to.as_deref(), Some("w2"));
    }
}
