//! The 2.x → 3.x migration, as Java KCL 3's `coordinator/migration/` runs it.
//!
//! The table's `Migration3.0` item records the fleet's client version (`cv`), and the version
//! decides the protocol every worker runs, whatever it was configured with (a fleet is never
//! switched behind its back):
//!
//! | `cv` | protocol | watched |
//! |---|---|---|
//! | `CLIENT_VERSION_2X` | 2.x taker | yes: a roll-forward sets `UPGRADE_FROM_2X` |
//! | `CLIENT_VERSION_UPGRADE_FROM_2X` | 2.x taker, metrics reports, the upgrade check | yes |
//! | `CLIENT_VERSION_3X_WITH_ROLLBACK` | KCL 3, leases renewed one by one | yes: a rollback sets `2X` |
//! | `CLIENT_VERSION_3X` | KCL 3 | no |
//!
//! In `UPGRADE_FROM_2X` one worker, the deterministic leader (the one Java's 2.x shard-sync
//! leader decider picks, so Java and Rust workers of one fleet agree), checks whether the
//! fleet is ready: the owner index is ACTIVE and every lease owner reports metrics, which a
//! KCL 2.x worker never does. Ready without a break for the stabilisation time, it sets
//! `3X_WITH_ROLLBACK`, conditional on the version it read; the workers see it at their next
//! look and switch to KCL 3 in place, keeping their leases.

use std::collections::BTreeSet;
use std::time::Duration;

use super::CoordinationMode;
use crate::entities::{MigrationHistoryEntry, MigrationState, WorkerMetrics};
use crate::lease::Lease;

/// Most earlier states a migration item keeps (`h`), as in Java.
const HISTORY_LIMIT: usize = 10;

/// Seed of Java's deterministic shuffle of lease owners (`DeterministicShuffleShardSyncLeaderDecider`).
const DETERMINISTIC_SHUFFLE_SEED: i64 = 1947;

/// A fleet's client version, the `cv` of the `Migration3.0` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientVersion {
    /// `CLIENT_VERSION_2X`: the fleet runs (or was rolled back to) the 2.x protocol.
    Kcl2x,
    /// `CLIENT_VERSION_UPGRADE_FROM_2X`: the fleet runs 2.x while it is checked for the flip.
    UpgradeFrom2x,
    /// `CLIENT_VERSION_3X_WITH_ROLLBACK`: the fleet runs KCL 3 and may still roll back.
    Kcl3xWithRollback,
    /// `CLIENT_VERSION_3X`: the fleet runs KCL 3 for good.
    Kcl3x,
}

impl ClientVersion {
    /// The `cv` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientVersion::Kcl2x => "CLIENT_VERSION_2X",
            ClientVersion::UpgradeFrom2x => "CLIENT_VERSION_UPGRADE_FROM_2X",
            ClientVersion::Kcl3xWithRollback => "CLIENT_VERSION_3X_WITH_ROLLBACK",
            ClientVersion::Kcl3x => "CLIENT_VERSION_3X",
        }
    }

    /// The version a `cv` string names, if it names one.
    pub fn parse(text: &str) -> Option<ClientVersion> {
        [
            ClientVersion::Kcl2x,
            ClientVersion::UpgradeFrom2x,
            ClientVersion::Kcl3xWithRollback,
            ClientVersion::Kcl3x,
        ]
        .into_iter()
        .find(|version| version.as_str() == text)
    }

    /// The protocol workers run at this version.
    pub const fn protocol(self) -> CoordinationMode {
        match self {
            ClientVersion::Kcl2x | ClientVersion::UpgradeFrom2x => CoordinationMode::Kcl2,
            ClientVersion::Kcl3xWithRollback | ClientVersion::Kcl3x => CoordinationMode::Kcl3,
        }
    }

    /// Whether workers keep reading the state to follow a change (flip, rollback,
    /// roll-forward). Only `3X` is final.
    pub const fn is_watched(self) -> bool {
        !matches!(self, ClientVersion::Kcl3x)
    }

    /// Whether a KCL 3 leader may keep leases alive by heartbeats alone. Not while the fleet
    /// can still roll back: a 2.x taker judges leases by their counters, and a lease kept by
    /// heartbeat looks expired to it.
    pub const fn allows_heartbeat_liveness(self) -> bool {
        matches!(self, ClientVersion::Kcl3x)
    }

    /// The version a worker starts a fleet at when the table records none; `None` for a
    /// worker that neither reads nor writes the state (pure 2.x).
    pub const fn initial(mode: CoordinationMode) -> Option<ClientVersion> {
        match mode {
            CoordinationMode::Kcl3 => Some(ClientVersion::Kcl3x),
            CoordinationMode::CompatibleWith2x => Some(ClientVersion::UpgradeFrom2x),
            CoordinationMode::Kcl2 => None,
        }
    }

    /// The version a worker configured with `mode` moves a fleet at this version to at once:
    /// a worker configured for KCL 3 finishes a migration that can still roll back (Java's
    /// rule: the operator redeploying with `CLIENT_VERSION_CONFIG_3X` ends the migration).
    pub const fn settled_by(self, mode: CoordinationMode) -> Option<ClientVersion> {
        match (self, mode) {
            (ClientVersion::Kcl3xWithRollback, CoordinationMode::Kcl3) => {
                Some(ClientVersion::Kcl3x)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state after `current` moves to `version`, written by `worker` at `now_ms`: the
/// current state goes to the front of the history, which keeps the newest ten.
pub fn next_migration_state(
    current: Option<&MigrationState>,
    version: ClientVersion,
    worker: &str,
    now_ms: u64,
) -> MigrationState {
    let mut history = Vec::new();
    if let Some(current) = current {
        history.push(MigrationHistoryEntry {
            client_version: current.client_version.clone(),
            modified_by: current.modified_by.clone(),
            modified_at_ms: current.modified_at_ms,
        });
        history.extend(current.history.iter().cloned());
        history.truncate(HISTORY_LIMIT);
    }
    MigrationState {
        client_version: version.as_str().to_owned(),
        modified_by: worker.to_owned(),
        modified_at_ms: now_ms,
        history,
    }
}

/// `java.util.Random`: the 48-bit linear congruential generator Java specifies exactly, so
/// that a shuffle here orders a list as the same shuffle in a Java worker does.
#[derive(Debug, Clone)]
struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed as u64 ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        // Java keeps the low 32 bits of the shifted seed, as a signed int.
        (self.seed >> (48 - bits)) as u32 as i32
    }

    #[cfg(test)]
    fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// A value in `0..bound`, `bound` > 0, drawn as Java draws it (rejecting the values that
    /// would bias it).
    fn next_int_below(&mut self, bound: i32) -> i32 {
        debug_assert!(bound > 0);
        if bound & bound.wrapping_neg() == bound {
            return ((i64::from(bound) * i64::from(self.next(31))) >> 31) as i32;
        }
        loop {
            let bits = self.next(31);
            let value = bits % bound;
            if bits.wrapping_sub(value).wrapping_add(bound - 1) >= 0 {
                return value;
            }
        }
    }

    /// `Collections.shuffle(list, random)` for a random-access list.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (2..=items.len()).rev() {
            let bound = i32::try_from(i).expect("lists shuffled here are small");
            let j = self.next_int_below(bound) as usize;
            items.swap(i - 1, j);
        }
    }
}

/// The worker Java's `DeterministicShuffleShardSyncLeaderDecider` elects among the owners of
/// `leases`: the distinct owners, sorted, shuffled with `java.util.Random(1947)`, the first.
/// It runs the periodic shard sync under the 2.x protocol and the upgrade check in
/// `UPGRADE_FROM_2X`. `None` when no lease has an owner.
pub fn deterministic_leader(leases: &[Lease]) -> Option<String> {
    let owners: BTreeSet<&str> = leases
        .iter()
        .filter_map(|lease| lease.lease_owner.as_deref())
        .collect();
    let mut owners: Vec<&str> = owners.into_iter().collect();
    JavaRandom::new(DETERMINISTIC_SHUFFLE_SEED).shuffle(&mut owners);
    owners.first().map(|owner| (*owner).to_owned())
}

/// The lease owners that hold up the flip to KCL 3: those without a metrics item reported
/// within `fresh_within` of `now_secs` (a KCL 2.x worker never writes one). Empty: the fleet
/// is ready, as far as its leases show.
pub fn upgrade_blockers(
    leases: &[Lease],
    workers: &[WorkerMetrics],
    now_secs: u64,
    fresh_within: Duration,
) -> Vec<String> {
    let fresh: BTreeSet<&str> = workers
        .iter()
        .filter(|w| {
            w.last_update_secs > 0
                && Duration::from_secs(now_secs.saturating_sub(w.last_update_secs)) <= fresh_within
        })
        .map(|w| w.worker_id.as_str())
        .collect();
    let owners: BTreeSet<&str> = leases
        .iter()
        .filter_map(|lease| lease.lease_owner.as_deref())
        .collect();
    owners
        .into_iter()
        .filter(|owner| !fresh.contains(owner))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::StoredCheckpoint;

    #[test]
    fn java_random_matches_java() {
        // Values any JVM prints for `new Random(seed).nextInt()`.
        assert_eq!(JavaRandom::new(42).next_int(), -1_170_105_035);
        assert_eq!(JavaRandom::new(0).next_int(), -1_155_484_576);
        // The first draw's top 31 bits are 1,562,431,130: a power-of-two bound keeps its top
        // bits (Java's shortcut), any other takes the remainder.
        assert_eq!(JavaRandom::new(42).next_int_below(16), 11);
        assert_eq!(JavaRandom::new(42).next_int_below(10), 0);
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut random = JavaRandom::new(DETERMINISTIC_SHUFFLE_SEED);
        for bound in [1, 2, 3, 7, 8, 100, 1 << 20] {
            let mut seen = BTreeSet::new();
            for _ in 0..2_000 {
                let value = random.next_int_below(bound);
                assert!((0..bound).contains(&value));
                seen.insert(value);
            }
            if bound <= 100 {
                assert_eq!(seen.len(), usize::try_from(bound).unwrap(), "bound {bound}");
            }
        }
    }

    fn owned(key: &str, owner: Option<&str>) -> Lease {
        let mut lease = Lease::new(key, StoredCheckpoint::new("TRIM_HORIZON"));
        lease.lease_owner = owner.map(str::to_owned);
        lease
    }

    #[test]
    fn the_deterministic_leader_ignores_lease_order_and_counts() {
        let a = vec![
            owned("shard-1", Some("w-b")),
            owned("shard-2", Some("w-a")),
            owned("shard-3", Some("w-c")),
            owned("shard-4", None),
        ];
        let mut b = a.clone();
        b.reverse();
        b.push(owned("shard-5", Some("w-a")));
        let leader = deterministic_leader(&a).unwrap();
        assert_eq!(deterministic_leader(&b).as_deref(), Some(leader.as_str()));
        assert!(["w-a", "w-b", "w-c"].contains(&leader.as_str()));
        assert_eq!(deterministic_leader(&[owned("shard-1", None)]), None);
        assert_eq!(
            deterministic_leader(&[owned("shard-1", Some("only"))]).as_deref(),
            Some("only")
        );
    }

    #[test]
    fn shuffle_is_a_permutation_that_depends_only_on_the_length() {
        let mut letters: Vec<char> = "abcdefghij".chars().collect();
        JavaRandom::new(DETERMINISTIC_SHUFFLE_SEED).shuffle(&mut letters);
        let mut sorted = letters.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, "abcdefghij".chars().collect::<Vec<_>>());
        assert_ne!(letters, sorted, "ten items come out in another order");
        let mut numbers: Vec<u8> = (0..10).collect();
        JavaRandom::new(DETERMINISTIC_SHUFFLE_SEED).shuffle(&mut numbers);
        let positions: Vec<char> = numbers.iter().map(|n| (b'a' + n) as char).collect();
        assert_eq!(positions, letters);
    }

    #[test]
    fn blockers_are_owners_without_fresh_metrics() {
        let leases = vec![
            owned("shard-1", Some("fresh")),
            owned("shard-2", Some("stale")),
            owned("shard-3", Some("java-2x")),
            owned("shard-4", None),
        ];
        let mut fresh = WorkerMetrics::new("fresh".to_owned());
        fresh.last_update_secs = 1_000;
        let mut stale = WorkerMetrics::new("stale".to_owned());
        stale.last_update_secs = 900;
        let blockers = upgrade_blockers(&leases, &[fresh, stale], 1_030, Duration::from_secs(60));
        assert_eq!(blockers, vec!["java-2x".to_owned(), "stale".to_owned()]);
    }

    #[test]
    fn versions_round_trip_and_history_keeps_ten() {
        for version in [
            ClientVersion::Kcl2x,
            ClientVersion::UpgradeFrom2x,
            ClientVersion::Kcl3xWithRollback,
            ClientVersion::Kcl3x,
        ] {
            assert_eq!(ClientVersion::parse(version.as_str()), Some(version));
        }
        assert_eq!(ClientVersion::parse("CLIENT_VERSION_4X"), None);
        let mut state = next_migration_state(None, ClientVersion::UpgradeFrom2x, "w-0", 1);
        assert!(state.history.is_empty());
        for i in 0..12 {
            state = next_migration_state(Some(&state), ClientVersion::Kcl2x, "w-1", 2 + i);
        }
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.history[0].modified_at_ms, 12);
        assert_eq!(state.modified_at_ms, 13);
    }
}
