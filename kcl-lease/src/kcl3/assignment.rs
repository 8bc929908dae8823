//! The leader's plan for one assignment round.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::AssignmentStrategy;
use crate::coordinator::LeaseConfig;
use crate::lease::Lease;

/// A worker as the leader sees it when planning.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLoad {
    /// The worker id.
    pub worker_id: String,
    /// Moving average of each reported metric (`C` → CPU percent); empty when the worker
    /// reports none (it is then balanced by lease throughput).
    pub utilisation: BTreeMap<String, f64>,
    /// Highest acceptable utilisation per metric (`opr[0]`).
    pub max_utilisation: BTreeMap<String, f64>,
    /// Whether it may be given leases (a valid metrics item, no failing metric, not draining).
    pub accepts_leases: bool,
    /// Whether every lease it holds must move off (an operator drains it).
    pub draining: bool,
}

/// One change the leader makes to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseMove {
    /// Give the lease to `to` outright (it was unowned, expired, or its owner is dead).
    Assign {
        /// The lease as the leader read it (its owners are the write's condition).
        lease: Lease,
        /// The new owner.
        to: String,
    },
    /// Move a lease a live worker is processing: a graceful handoff to `to`.
    Handoff {
        /// The lease as the leader read it.
        lease: Lease,
        /// The new owner.
        to: String,
    },
}

/// What one round plans from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The application's leases, as scanned.
    pub leases: &'a [Lease],
    /// The active workers (dead and stale ones are left out).
    pub workers: &'a [WorkerLoad],
    /// Keys of leases that need an owner: unowned, expired, or owned by a worker that is not
    /// active, and handoffs that stalled.
    pub orphaned: &'a BTreeSet<String>,
    /// Whether this round also rebalances live leases.
    pub rebalance: bool,
}

/// The name under which a worker that reports no metrics is balanced: its share of the
/// throughput of the leases held by all such workers, as a percentage.
const THROUGHPUT_SHARE: &str = "T";

/// The moves of one round: orphaned leases to the workers with the most room, leases of
/// draining workers handed to others, then, when `input.rebalance`, live leases off
/// overloaded workers.
///
/// Orphaned leases are placed in the order of `input.leases` (the caller puts the oldest
/// first). A lease moves at most once per round; a worker never receives a lease it holds.
///
/// Two choices differ from Java's `LeaseAssignmentManager`:
/// - a worker whose utilisation is 0 has unlimited room when others are busier (Java gives it
///   a room of 1, less than a slightly loaded worker's), so an empty newcomer is filled first;
/// - the lease-count strategy moves every excess lease in one round, not one per round, so a
///   fleet started together on many leases is balanced to ±1 within two rounds;
/// - while no lease reports any throughput (a fleet just started, or idle), utilisation
///   cannot be traced to leases, so the utilisation strategy rebalances by lease count: a
///   worker that joins an idle fleet gets its share instead of nothing.
pub fn plan_assignment(
    input: &PlanInput<'_>,
    lease_config: &LeaseConfig,
    rng: &mut StdRng,
) -> Vec<LeaseMove> {
    let mut planner = Planner::new(input, lease_config);
    planner.place_orphans();
    planner.drain();
    if input.rebalance {
        match lease_config.coordination.strategy {
            AssignmentStrategy::Utilisation if planner.throughput_known() => {
                planner.rebalance_by_utilisation(rng)
            }
            AssignmentStrategy::Utilisation | AssignmentStrategy::LeaseCount => {
                planner.rebalance_by_count(rng)
            }
        }
    }
    planner.moves
}

/// A worker's projected state while a round is planned.
#[derive(Debug)]
struct Slot {
    worker_id: String,
    accepts_leases: bool,
    draining: bool,
    lease_count: usize,
    assigned_kbps: f64,
    /// Per metric, the utilisation it is projected to reach with the moves planned so far.
    utilisation: BTreeMap<String, f64>,
    max_utilisation: BTreeMap<String, f64>,
    /// Indices (into the round's leases) of the leases it holds that a rebalance or drain may
    /// move: live, no handoff under way.
    movable: Vec<usize>,
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    config: &'a LeaseConfig,
    slots: Vec<Slot>,
    /// Throughput each lease counts for (leases that report none count at the mean).
    weights: Vec<f64>,
    /// Per metric, the average utilisation over the workers that are not draining.
    averages: BTreeMap<String, f64>,
    /// Throughput of all leases over the workers that are not draining: how much a worker
    /// of average utilisation carries, to project utilisation from moved throughput.
    average_kbps_per_worker: f64,
    lease_count_target: usize,
    moved: BTreeSet<usize>,
    moves: Vec<LeaseMove>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput<'a>, config: &'a LeaseConfig) -> Planner<'a> {
        let known: Vec<f64> = input
            .leases
            .iter()
            .filter_map(|lease| lease.throughput_kbps)
            .filter(|kbps| kbps.is_finite() && *kbps >= 0.0)
            .collect();
        // Without any throughput figure every lease weighs the same.
        let mean = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let weights: Vec<f64> = input
            .leases
            .iter()
            .map(|lease| match lease.throughput_kbps {
                Some(kbps) if kbps.is_finite() && kbps >= 0.0 => kbps,
                _ => mean,
            })
            .collect();
        let mut slots: Vec<Slot> = input
            .workers
            .iter()
            .map(|worker| Slot {
                worker_id: worker.worker_id.clone(),
                accepts_leases: worker.accepts_leases && !worker.draining,
                draining: worker.draining,
                lease_count: 0,
                assigned_kbps: 0.0,
                utilisation: worker.utilisation.clone(),
                max_utilisation: worker.max_utilisation.clone(),
                movable: Vec::new(),
            })
            .collect();
        let index_of: BTreeMap<String, usize> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (slot.worker_id.clone(), i))
            .collect();
        for (i, lease) in input.leases.iter().enumerate() {
            if input.orphaned.contains(&lease.lease_key) {
                continue;
            }
            let Some(&slot) = lease.lease_owner.as_deref().and_then(|o| index_of.get(o)) else {
                continue;
            };
            let slot = &mut slots[slot];
            slot.lease_count += 1;
            slot.assigned_kbps += weights[i];
            if lease.checkpoint_owner.is_none() {
                slot.movable.push(i);
            }
        }
        // Workers without metrics are balanced by their share of the throughput the
        // metric-less workers hold together.
        let metricless_kbps: f64 = slots
            .iter()
            .filter(|slot| slot.utilisation.is_empty())
            .map(|slot| slot.assigned_kbps)
            .sum();
        for slot in slots.iter_mut().filter(|slot| slot.utilisation.is_empty()) {
            let share = if metricless_kbps > 0.0 {
                100.0 * slot.assigned_kbps / metricless_kbps
            } else {
                0.0
            };
            slot.utilisation.insert(THROUGHPUT_SHARE.to_owned(), share);
            slot.max_utilisation
                .insert(THROUGHPUT_SHARE.to_owned(), 100.0);
        }
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for slot in slots.iter().filter(|slot| !slot.draining) {
            for (metric, value) in &slot.utilisation {
                let entry = sums.entry(metric.clone()).or_insert((0.0, 0));
                entry.0 += value;
                entry.1 += 1;
            }
        }
        let averages = sums
            .into_iter()
            .map(|(metric, (sum, n))| (metric, sum / n as f64))
            .collect();
        let receivers = slots
            .iter()
            .filter(|slot| slot.accepts_leases)
            .count()
            .max(1);
        let holders = slots.iter().filter(|slot| !slot.draining).count().max(1);
        let total_kbps: f64 = weights.iter().sum();
        let lease_count_target = input
            .leases
            .len()
            .div_ceil(receivers)
            .max(1)
            .min(config.max_leases_for_worker);
        Planner {
            input,
            config,
            slots,
            weights,
            averages,
            average_kbps_per_worker: total_kbps / holders as f64,
            lease_count_target,
            moved: BTreeSet::new(),
            moves: Vec::new(),
        }
    }

    /// Whether some lease reports a throughput above zero.
    fn throughput_known(&self) -> bool {
        self.input
            .leases
            .iter()
            .filter_map(|lease| lease.throughput_kbps)
            .any(|kbps| kbps.is_finite() && kbps > 0.0)
    }

    fn strategy(&self) -> AssignmentStrategy {
        self.config.coordination.strategy
    }

    /// How much more a worker can take: the smallest, over its metrics, of the distance to
    /// the average relative to its own utilisation.
    fn room(&self, slot: &Slot) -> f64 {
        slot.utilisation
            .iter()
            .map(|(metric, value)| {
                let average = self.averages.get(metric).copied().unwrap_or(0.0);
                if *value > 0.0 {
                    (average - value) / value
                } else if average > 0.0 {
                    f64::INFINITY
                } else {
                    1.0
                }
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Whether `slot` may receive a lease weighing `kbps`.
    fn can_receive(&self, slot: &Slot, kbps: f64) -> bool {
        if !slot.accepts_leases || slot.lease_count >= self.config.max_leases_for_worker {
            return false;
        }
        if let Some(cap) = self.config.coordination.max_throughput_per_host_kbps {
            // A worker holding nothing may take one lease above the cap, or a single hot
            // lease would never be processed.
            if slot.lease_count > 0 && slot.assigned_kbps + kbps > cap {
                return false;
            }
        }
        match self.strategy() {
            AssignmentStrategy::Utilisation => true,
            AssignmentStrategy::LeaseCount => slot.lease_count < self.lease_count_target,
        }
    }

    /// The worker that should receive a lease weighing `kbps`: the one with the most room
    /// (fewest leases under the lease-count strategy), ties to the one holding less.
    fn best_receiver(&self, kbps: f64, excluding: Option<usize>) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if Some(i) == excluding || !self.can_receive(slot, kbps) {
                continue;
            }
            let room = match self.strategy() {
                AssignmentStrategy::Utilisation => self.room(slot),
                AssignmentStrategy::LeaseCount => -(slot.lease_count as f64),
            };
            let better = match best {
                None => true,
                Some((j, best_room)) => {
                    let other = &self.slots[j];
                    room > best_room
                        || (room == best_room
                            && (slot.lease_count, slot.assigned_kbps)
                                < (other.lease_count, other.assigned_kbps))
                }
            };
            if better {
                best = Some((i, room));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Records that lease `lease` (weighing its weight) leaves `from` (if it was counted
    /// there) for `to`, projecting both workers' utilisation.
    fn shift(&mut self, lease: usize, from: Option<usize>, to: usize) {
        let kbps = self.weights[lease];
        let averages = &self.averages;
        let per_worker = self.average_kbps_per_worker;
        let project = |slot: &mut Slot, sign: f64| {
            for (metric, value) in slot.utilisation.iter_mut() {
                let average = averages.get(metric).copied().unwrap_or(0.0);
                if per_worker > 0.0 {
                    *value = (*value + sign * kbps * average / per_worker).max(0.0);
                }
            }
        };
        if let Some(from) = from {
            let slot = &mut self.slots[from];
            slot.lease_count -= 1;
            slot.assigned_kbps -= kbps;
            slot.movable.retain(|i| *i != lease);
            project(slot, -1.0);
        }
        let slot = &mut self.slots[to];
        slot.lease_count += 1;
        slot.assigned_kbps += kbps;
        project(slot, 1.0);
        self.moved.insert(lease);
    }

    fn place_orphans(&mut self) {
        let input = self.input;
        for (i, lease) in input.leases.iter().enumerate() {
            if !input.orphaned.contains(&lease.lease_key) {
                continue;
            }
            let Some(to) = self.best_receiver(self.weights[i], None) else {
                continue;
            };
            self.shift(i, None, to);
            let to_id = self.slots[to].worker_id.clone();
            // A lease that expired in its live owner's hands stays with it (Java's no-op);
            // a stalled handoff to `to` is still completed by assigning it.
            if lease.lease_owner.as_deref() == Some(to_id.as_str())
                && lease.checkpoint_owner.is_none()
            {
                continue;
            }
            self.moves.push(LeaseMove::Assign {
                lease: lease.clone(),
                to: to_id,
            });
        }
    }

    /// Moves lease `lease` off the worker in slot `from` to `to`: a handoff for a lease being
    /// processed, a plain assignment for a finished one (nothing to hand over).
    fn move_live(&mut self, lease: usize, from: usize, to: usize) {
        self.shift(lease, Some(from), to);
        let record = self.input.leases[lease].clone();
        let to = self.slots[to].worker_id.clone();
        self.moves.push(if record.is_shard_end() {
            LeaseMove::Assign { lease: record, to }
        } else {
            LeaseMove::Handoff { lease: record, to }
        });
    }

    fn drain(&mut self) {
        for from in 0..self.slots.len() {
            if !self.slots[from].draining {
                continue;
            }
            for lease in self.slots[from].movable.clone() {
                let Some(to) = self.best_receiver(self.weights[lease], Some(from)) else {
                    break;
                };
                self.move_live(lease, from, to);
            }
        }
    }

    /// Leases of `from` a rebalance may move, in random order: live, not finished, not
    /// already moved this round.
    fn shuffled_candidates(&self, from: usize, rng: &mut StdRng) -> Vec<usize> {
        let mut candidates: Vec<usize> = self.slots[from]
            .movable
            .iter()
            .copied()
            .filter(|i| !self.moved.contains(i) && !self.input.leases[*i].is_shard_end())
            .collect();
        candidates.shuffle(rng);
        candidates
    }

    /// Java's variance-based rebalance: workers at or above `average × (1 + threshold)` (or
    /// above their maximum utilisation) give up a dampened share of their excess throughput to
    /// the workers with the most room below the average.
    fn rebalance_by_utilisation(&mut self, rng: &mut StdRng) {
        let threshold = self.config.coordination.rebalance_threshold_percent / 100.0;
        let dampening = self.config.coordination.dampening_percent / 100.0;
        // Per donor: the metric it is most over on, by how much (relative to its value), and
        // the utilisation it should come down to.
        let mut donors: Vec<(usize, String, f64, f64)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.draining {
                continue;
            }
            let mut worst: Option<(String, f64, f64)> = None;
            for (metric, value) in &slot.utilisation {
                let average = self.averages.get(metric).copied().unwrap_or(0.0);
                let max = slot.max_utilisation.get(metric).copied();
                let over_bound = *value > average && *value >= average * (1.0 + threshold);
                let over_max = max.is_some_and(|max| *value > max);
                if !(over_bound || over_max) || *value <= 0.0 {
                    continue;
                }
                let limit = match max {
                    Some(max) if over_max => average.min(max),
                    _ => average,
                };
                let excess = (value - limit) / value;
                if worst.as_ref().is_none_or(|(_, e, _)| excess > *e) {
                    worst = Some((metric.clone(), excess, limit));
                }
            }
            if let Some((metric, excess, limit)) = worst {
                donors.push((i, metric, excess, limit));
            }
        }
        donors.sort_by(|a, b| b.2.total_cmp(&a.2));
        let donor_set: BTreeSet<usize> = donors.iter().map(|(i, _, _, _)| *i).collect();
        for (from, metric, excess, limit) in donors {
            let budget = self.slots[from].assigned_kbps * excess * dampening;
            let candidates = self.shuffled_candidates(from, rng);
            let mut chosen = Vec::new();
            let mut total = 0.0;
            for lease in &candidates {
                if total + self.weights[*lease] <= budget {
                    total += self.weights[*lease];
                    chosen.push(*lease);
                }
            }
            if chosen.is_empty() && self.config.coordination.allow_throughput_overshoot {
                if let Some(smallest) = candidates
                    .iter()
                    .copied()
                    .min_by(|a, b| self.weights[*a].total_cmp(&self.weights[*b]))
                {
                    chosen.push(smallest);
                }
            }
            for lease in chosen {
                if self.slots[from]
                    .utilisation
                    .get(&metric)
                    .copied()
                    .unwrap_or(0.0)
                    <= limit
                {
                    break;
                }
                let Some(to) = self.rebalance_receiver(lease, from, &donor_set) else {
                    break;
                };
                self.move_live(lease, from, to);
            }
        }
    }

    /// The receiver of a rebalanced lease: not a donor, below the average and its maximum on
    /// every metric.
    fn rebalance_receiver(
        &self,
        lease: usize,
        from: usize,
        donors: &BTreeSet<usize>,
    ) -> Option<usize> {
        let to = self.best_receiver(self.weights[lease], Some(from))?;
        let slot = &self.slots[to];
        let below_average = slot.utilisation.iter().all(|(metric, value)| {
            *value < self.averages.get(metric).copied().unwrap_or(0.0)
                && slot
                    .max_utilisation
                    .get(metric)
                    .is_none_or(|max| *value < *max)
        });
        (!donors.contains(&to) && below_average).then_some(to)
    }

    /// Lease-count balancing: leases move from the worker holding most to the one holding
    /// fewest until they differ by at most one.
    fn rebalance_by_count(&mut self, rng: &mut StdRng) {
        let mut exhausted: BTreeSet<usize> = BTreeSet::new();
        // Every pass moves a lease or retires a donor, so this bound is never reached; it
        // guards against a cycle should the counts ever disagree with that reasoning.
        for _ in 0..=self.input.leases.len() + self.slots.len() {
            let Some(from) = (0..self.slots.len())
                .filter(|i| !self.slots[*i].draining && !exhausted.contains(i))
                .max_by_key(|i| (self.slots[*i].lease_count, std::cmp::Reverse(*i)))
            else {
                return;
            };
            let Some(to) = (0..self.slots.len())
                .filter(|i| *i != from)
                .filter(|i| {
                    let slot = &self.slots[*i];
                    slot.accepts_leases && slot.lease_count < self.config.max_leases_for_worker
                })
                .min_by_key(|i| (self.slots[*i].lease_count, *i))
            else {
                return;
            };
            let over_target = self.slots[from].lease_count > self.lease_count_target;
            if self.slots[from].lease_count <= self.slots[to].lease_count + 1 && !over_target {
                return;
            }
            if self.slots[from].lease_count <= self.slots[to].lease_count {
                return;
            }
            let candidates = self.shuffled_candidates(from, rng);
            match candidates.first() {
                Some(lease) => self.move_live(*lease, from, to),
                None => {
                    exhausted.insert(from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::StoredCheckpoint;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn lease(key: &str, owner: Option<&str>, kbps: Option<f64>) -> Lease {
        let mut lease = Lease::new(key, StoredCheckpoint::new("TRIM_HORIZON"));
        lease.lease_owner = owner.map(str::to_owned);
        lease.throughput_kbps = kbps;
        lease
    }

    fn worker(id: &str, cpu: Option<f64>) -> WorkerLoad {
        let (utilisation, max_utilisation) = match cpu {
            Some(cpu) => (
                BTreeMap::from([("C".to_owned(), cpu)]),
                BTreeMap::from([("C".to_owned(), 100.0)]),
            ),
            None => (BTreeMap::new(), BTreeMap::new()),
        };
        WorkerLoad {
            worker_id: id.to_owned(),
            utilisation,
            max_utilisation,
            accepts_leases: true,
            draining: false,
        }
    }

    fn count_strategy() -> LeaseConfig {
        let mut config = LeaseConfig::default();
        config.coordination.strategy = AssignmentStrategy::LeaseCount;
        config
    }

    fn plan(
        leases: &[Lease],
        workers: &[WorkerLoad],
        orphaned: &BTreeSet<String>,
        rebalance: bool,
        config: &LeaseConfig,
    ) -> Vec<LeaseMove> {
        let input = PlanInput {
            leases,
            workers,
            orphaned,
            rebalance,
        };
        plan_assignment(&input, config, &mut StdRng::seed_from_u64(7))
    }

    /// Leases per worker after applying `moves` to `leases`.
    fn owners_after(leases: &[Lease], moves: &[LeaseMove]) -> BTreeMap<String, usize> {
        let mut owner: BTreeMap<String, Option<String>> = leases
            .iter()
            .map(|l| (l.lease_key.clone(), l.lease_owner.clone()))
            .collect();
        for m in moves {
            let (LeaseMove::Assign { lease, to } | LeaseMove::Handoff { lease, to }) = m;
            owner.insert(lease.lease_key.clone(), Some(to.clone()));
        }
        let mut counts = BTreeMap::new();
        for o in owner.into_values().flatten() {
            *counts.entry(o).or_insert(0) += 1;
        }
        counts
    }

    fn unowned(n: usize) -> (Vec<Lease>, BTreeSet<String>) {
        let leases: Vec<Lease> = (0..n)
            .map(|i| lease(&format!("shard-{i:04}"), None, None))
            .collect();
        let orphaned = leases.iter().map(|l| l.lease_key.clone()).collect();
        (leases, orphaned)
    }

    fn spread(counts: &BTreeMap<String, usize>, workers: &[WorkerLoad]) -> usize {
        let values: Vec<usize> = workers
            .iter()
            .map(|w| counts.get(&w.worker_id).copied().unwrap_or(0))
            .collect();
        values.iter().max().unwrap() - values.iter().min().unwrap()
    }

    #[test]
    fn a_cold_start_spreads_orphans_evenly_under_both_strategies() {
        let (leases, orphaned) = unowned(1_000);
        let workers: Vec<WorkerLoad> = (1..=4)
            .map(|i| worker(&format!("w{i}"), Some(3.0)))
            .collect();
        for config in [LeaseConfig::default(), count_strategy()] {
            let moves = plan(&leases, &workers, &orphaned, true, &config);
            assert_eq!(moves.len(), 1_000);
            assert!(moves.iter().all(|m| matches!(m, LeaseMove::Assign { .. })));
            let counts = owners_after(&leases, &moves);
            assert!(spread(&counts, &workers) <= 1, "{counts:?}");
        }
    }

    #[test]
    fn orphans_go_to_the_worker_with_most_room() {
        let leases = vec![
            lease("a", Some("busy"), Some(10.0)),
            lease("b", Some("idle"), Some(10.0)),
            lease("orphan", Some("dead"), Some(10.0)),
        ];
        let workers = vec![worker("busy", Some(80.0)), worker("idle", Some(20.0))];
        let orphaned = BTreeSet::from(["orphan".to_owned()]);
        let moves = plan(&leases, &workers, &orphaned, false, &LeaseConfig::default());
        assert_eq!(moves.len(), 1);
        assert!(
            matches!(&moves[0], LeaseMove::Assign { to, lease } if to == "idle" && lease.lease_key == "orphan")
        );
    }

    #[test]
    fn an_expired_lease_of_its_best_worker_stays_put() {
        let leases = vec![lease("a", Some("w1"), None)];
        let workers = vec![worker("w1", Some(10.0))];
        let orphaned = BTreeSet::from(["a".to_owned()]);
        assert!(plan(&leases, &workers, &orphaned, true, &LeaseConfig::default()).is_empty());
    }

    #[test]
    fn a_stalled_handoff_to_the_best_worker_is_still_assigned() {
        let mut stalled = lease("a", Some("w1"), None);
        stalled.checkpoint_owner = Some("gone".to_owned());
        let workers = vec![worker("w1", Some(10.0))];
        let orphaned = BTreeSet::from(["a".to_owned()]);
        let moves = plan(
            &[stalled],
            &workers,
            &orphaned,
            false,
            &LeaseConfig::default(),
        );
        assert!(matches!(&moves[..], [LeaseMove::Assign { to, .. }] if to == "w1"));
    }

    #[test]
    fn caps_on_leases_and_throughput_are_respected() {
        let (leases, orphaned) = unowned(10);
        let workers = vec![worker("w1", None), worker("w2", None)];
        let mut config = LeaseConfig {
            max_leases_for_worker: 3,
            ..LeaseConfig::default()
        };
        let counts = owners_after(&leases, &plan(&leases, &workers, &orphaned, true, &config));
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![3, 3]);

        config.max_leases_for_worker = usize::MAX;
        config.coordination.max_throughput_per_host_kbps = Some(25.0);
        let hot: Vec<Lease> = leases
            .iter()
            .map(|l| lease(&l.lease_key, None, Some(10.0)))
            .collect();
        let counts = owners_after(&hot, &plan(&hot, &workers, &orphaned, true, &config));
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn workers_that_refuse_leases_get_none() {
        let (leases, orphaned) = unowned(6);
        let mut failing = worker("failing", Some(1.0));
        failing.accepts_leases = false;
        let workers = vec![failing, worker("ok", Some(50.0))];
        let counts = owners_after(
            &leases,
            &plan(&leases, &workers, &orphaned, true, &LeaseConfig::default()),
        );
        assert_eq!(counts.get("failing"), None);
        assert_eq!(counts["ok"], 6);
    }

    #[test]
    fn a_draining_worker_hands_every_lease_off_and_receives_none() {
        let mut leases: Vec<Lease> = (0..6)
            .map(|i| lease(&format!("d{i}"), Some("drained"), None))
            .collect();
        leases.push(lease("orphan", None, None));
        let mut drained = worker("drained", Some(1.0));
        drained.draining = true;
        let workers = vec![drained, worker("w1", Some(50.0)), worker("w2", Some(50.0))];
        let orphaned = BTreeSet::from(["orphan".to_owned()]);
        // Draining happens in every round, not only rebalancing ones.
        let moves = plan(&leases, &workers, &orphaned, false, &count_strategy());
        let handoffs = moves
            .iter()
            .filter(|m| matches!(m, LeaseMove::Handoff { .. }))
            .count();
        assert_eq!(handoffs, 6);
        let counts = owners_after(&leases, &moves);
        assert_eq!(counts.get("drained"), None);
        assert!(spread(&counts, &workers[1..]) <= 1, "{counts:?}");
    }

    #[test]
    fn a_rebalance_moves_a_dampened_share_from_the_overloaded_worker() {
        // w1 holds 10 leases at 90 % CPU, w2 and w3 hold 10 each at 30 %: the average is 50,
        // w1's excess (90 - 50) / 90 = 44 %, dampened to 60 % of that: ~27 % of its throughput.
        let mut leases = Vec::new();
        for w in ["w1", "w2", "w3"] {
            for i in 0..10 {
                leases.push(lease(&format!("{w}-{i}"), Some(w), Some(10.0)));
            }
        }
        let workers = vec![
            worker("w1", Some(90.0)),
            worker("w2", Some(30.0)),
            worker("w3", Some(30.0)),
        ];
        let none = BTreeSet::new();
        assert!(
            plan(&leases, &workers, &none, false, &LeaseConfig::default()).is_empty(),
            "no rebalance asked for"
        );
        let moves = plan(&leases, &workers, &none, true, &LeaseConfig::default());
        assert_eq!(moves.len(), 2, "{moves:?}");
        for m in &moves {
            let LeaseMove::Handoff { lease, to } = m else {
                panic!("a live lease moves by handoff: {m:?}");
            };
            assert_eq!(lease.lease_owner.as_deref(), Some("w1"));
            assert_ne!(to, "w1", "never to itself");
        }
        let mut less_dampened = LeaseConfig::default();
        less_dampened.coordination.dampening_percent = 100.0;
        assert_eq!(
            plan(&leases, &workers, &none, true, &less_dampened).len(),
            4
        );
    }

    #[test]
    fn workers_within_the_threshold_are_left_alone() {
        let leases: Vec<Lease> = ["w1", "w2"]
            .iter()
            .flat_map(|w| (0..5).map(move |i| lease(&format!("{w}{i}"), Some(w), None)))
            .collect();
        let workers = vec![worker("w1", Some(52.0)), worker("w2", Some(48.0))];
        assert!(plan(
            &leases,
            &workers,
            &BTreeSet::new(),
            true,
            &LeaseConfig::default()
        )
        .is_empty());
    }

    #[test]
    fn overshoot_moves_the_smallest_lease_only_when_allowed() {
        // One big and one small lease on the hot worker; the budget is below both.
        let leases = vec![
            lease("big", Some("hot"), Some(1_000.0)),
            lease("small", Some("hot"), Some(400.0)),
            lease("other", Some("cold"), Some(10.0)),
        ];
        let workers = vec![worker("hot", Some(60.0)), worker("cold", Some(40.0))];
        let none = BTreeSet::new();
        let moves = plan(&leases, &workers, &none, true, &LeaseConfig::default());
        assert!(
            matches!(&moves[..], [LeaseMove::Handoff { lease, to }] if lease.lease_key == "small" && to == "cold"),
            "{moves:?}"
        );
        let mut strict = LeaseConfig::default();
        strict.coordination.allow_throughput_overshoot = false;
        assert!(plan(&leases, &workers, &none, true, &strict).is_empty());
    }

    #[test]
    fn metricless_workers_are_balanced_by_throughput_share() {
        let mut leases: Vec<Lease> = (0..8)
            .map(|i| lease(&format!("a{i}"), Some("w1"), Some(10.0)))
            .collect();
        leases.push(lease("b0", Some("w2"), Some(10.0)));
        let workers = vec![worker("w1", None), worker("w2", None)];
        let moves = plan(
            &leases,
            &workers,
            &BTreeSet::new(),
            true,
            &LeaseConfig::default(),
        );
        assert!(!moves.is_empty());
        assert!(moves
            .iter()
            .all(|m| matches!(m, LeaseMove::Handoff { to, .. } if to == "w2")));
        let counts = owners_after(&leases, &moves);
        assert!(counts["w1"] < 8 && counts["w2"] > 1, "{counts:?}");
    }

    #[test]
    fn the_count_strategy_moves_all_excess_in_one_round() {
        let leases: Vec<Lease> = (0..1_000)
            .map(|i| lease(&format!("s{i:04}"), Some("w1"), None))
            .collect();
        let workers: Vec<WorkerLoad> = (1..=4)
            .map(|i| worker(&format!("w{i}"), Some(10.0)))
            .collect();
        let moves = plan(&leases, &workers, &BTreeSet::new(), true, &count_strategy());
        assert_eq!(moves.len(), 750);
        let counts = owners_after(&leases, &moves);
        assert!(spread(&counts, &workers) <= 1, "{counts:?}");
        // A balanced fleet stays as it is.
        let moved: Vec<Lease> = leases
            .iter()
            .map(|l| {
                let mut l = l.clone();
                if let Some(LeaseMove::Handoff { to, .. }) = moves.iter().find(
                    |m| matches!(m, LeaseMove::Handoff { lease, .. } if lease.lease_key == l.lease_key),
                ) {
                    l.lease_owner = Some(to.clone());
                }
                l
            })
            .collect();
        assert!(plan(&moved, &workers, &BTreeSet::new(), true, &count_strategy()).is_empty());
    }

    #[test]
    fn finished_and_handed_off_leases_are_not_rebalanced() {
        let mut leases: Vec<Lease> = (0..4)
            .map(|i| lease(&format!("s{i}"), Some("w1"), None))
            .collect();
        leases[0].checkpoint = Some(StoredCheckpoint::new("SHARD_END"));
        leases[1].checkpoint_owner = Some("w0".to_owned());
        let workers = vec![worker("w1", Some(10.0)), worker("w2", Some(10.0))];
        let moves = plan(&leases, &workers, &BTreeSet::new(), true, &count_strategy());
        for m in &moves {
            let LeaseMove::Handoff { lease, .. } = m else {
                panic!("{m:?}");
            };
            assert!(lease.lease_key == "s2" || lease.lease_key == "s3");
        }
        assert_eq!(
            moves.len(),
            2,
            "w1 keeps the two it cannot give, w2 gets two"
        );
    }

    #[test]
    fn an_idle_fleet_is_balanced_by_count_under_the_utilisation_strategy() {
        // Nothing reports throughput and every CPU is equally idle: a newcomer still gets its
        // share, all in one round.
        let leases: Vec<Lease> = (0..30)
            .map(|i| lease(&format!("s{i:02}"), Some("old"), None))
            .collect();
        let workers = vec![worker("old", Some(2.0)), worker("new", Some(2.0))];
        let moves = plan(
            &leases,
            &workers,
            &BTreeSet::new(),
            true,
            &LeaseConfig::default(),
        );
        assert_eq!(moves.len(), 15);
        let zero: Vec<Lease> = leases
            .iter()
            .map(|l| lease(&l.lease_key, Some("old"), Some(0.0)))
            .collect();
        let moves = plan(
            &zero,
            &workers,
            &BTreeSet::new(),
            true,
            &LeaseConfig::default(),
        );
        assert_eq!(moves.len(), 15, "a throughput of zero tells nothing either");
    }

    #[test]
    fn a_worker_above_its_maximum_sheds_load_even_below_the_average() {
        // Every worker runs hot; w1 is above its own maximum (70) though below the average.
        let leases: Vec<Lease> = ["w1", "w2", "w3"]
            .iter()
            .flat_map(|w| (0..10).map(move |i| lease(&format!("{w}-{i}"), Some(w), Some(10.0))))
            .collect();
        let mut w1 = worker("w1", Some(80.0));
        w1.max_utilisation.insert("C".to_owned(), 70.0);
        let workers = vec![w1, worker("w2", Some(100.0)), worker("w3", Some(70.0))];
        let moves = plan(
            &leases,
            &workers,
            &BTreeSet::new(),
            true,
            &LeaseConfig::default(),
        );
        let from_w1 = moves
            .iter()
            .filter(|m| matches!(m, LeaseMove::Handoff { lease, to } if lease.lease_owner.as_deref() == Some("w1") && to == "w3"))
            .count();
        assert!(from_w1 >= 1, "{moves:?}");
    }

    proptest! {
        #[test]
        fn every_orphan_is_placed_when_there_is_room_and_no_cap_is_exceeded(
            lease_count in 0usize..120,
            owners in proptest::collection::vec(0usize..6, 120),
            cpus in proptest::collection::vec(0.0f64..100.0, 5),
            max_leases in 1usize..80,
            count_based in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let workers: Vec<WorkerLoad> = cpus
                .iter()
                .enumerate()
                .map(|(i, cpu)| worker(&format!("w{i}"), Some(*cpu)))
                .collect();
            // Owner index 5 is a dead worker (not in `workers`): its leases are orphaned.
            let leases: Vec<Lease> = (0..lease_count)
                .map(|i| {
                    let owner = (owners[i] < 5).then(|| format!("w{}", owners[i]));
                    lease(&format!("s{i:03}"), owner.as_deref(), None)
                })
                .collect();
            let orphaned: BTreeSet<String> = leases
                .iter()
                .filter(|l| l.lease_owner.is_none())
                .map(|l| l.lease_key.clone())
                .collect();
            let mut config = if count_based { count_strategy() } else { LeaseConfig::default() };
            config.max_leases_for_worker = max_leases;
            let input = PlanInput { leases: &leases, workers: &workers, orphaned: &orphaned, rebalance: true };
            let moves = plan_assignment(&input, &config, &mut StdRng::seed_from_u64(seed));
            let mut moved = BTreeSet::new();
            for m in &moves {
                let (LeaseMove::Assign { lease, to } | LeaseMove::Handoff { lease, to }) = m;
                prop_assert!(moved.insert(lease.lease_key.clone()), "a lease moved twice");
                prop_assert_ne!(lease.lease_owner.as_deref(), Some(to.as_str()));
                prop_assert_eq!(
                    matches!(m, LeaseMove::Assign { .. }),
                    orphaned.contains(&lease.lease_key)
                );
            }
            let before = owners_after(&leases, &[]);
            let after = owners_after(&leases, &moves);
            for (worker, count) in &after {
                // A worker already over the cap is not pushed further over it.
                let allowed = max_leases.max(before.get(worker).copied().unwrap_or(0));
                prop_assert!(*count <= allowed, "{} holds {}", worker, count);
            }
            let placed = moves.iter().filter(|m| matches!(m, LeaseMove::Assign { .. })).count();
            let owned = lease_count - orphaned.len();
            let target = if count_based {
                lease_count.div_ceil(5).max(1).min(max_leases)
            } else {
                max_leases
            };
            let capacity: usize = (0..5)
                .map(|i| target.saturating_sub(before.get(&format!("w{i}")).copied().unwrap_or(0)))
                .sum();
            let _ = owned;
            prop_assert_eq!(placed, orphaned.len().min(capacity));
        }
    }
}
