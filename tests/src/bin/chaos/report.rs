//! Reading the logs of a run and the checks: nothing acknowledged is left unprocessed, order
//! per key holds within each processor, checkpoints never go backwards and are written only by
//! the lease's holder, and how duplicates and recovery times came about.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::logs::{position_rank, Ack, LeaseWrite, ProcessorEvent, ProcessorId, HEARTBEAT};

/// The faults the runner injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// `docker kill` (SIGKILL) of a worker, then `docker start`.
    Kill,
    /// `docker network disconnect` of a worker past the failover time, then reconnect.
    Partition,
    /// `docker pause` of a worker past its lease expiry, then unpause.
    Pause,
    /// SIGKILL of the emulator and a restart on the same data directory.
    EmulatorKill,
    /// SplitShard of an open shard while records flow.
    Split,
    /// MergeShards of two adjacent open shards.
    Merge,
    /// UpdateShardCount (uniform scaling) up or down.
    UpdateShardCount,
    /// `docker stop` (SIGTERM: graceful shutdown) of a worker and a start: a rolling deploy.
    GracefulRestart,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Partition,
        FaultKind::Pause,
        FaultKind::EmulatorKill,
        FaultKind::Split,
        FaultKind::Merge,
        FaultKind::UpdateShardCount,
        FaultKind::GracefulRestart,
    ];

    /// The name in logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Partition => "partition",
            FaultKind::Pause => "pause",
            FaultKind::EmulatorKill => "emulator-kill",
            FaultKind::Split => "split",
            FaultKind::Merge => "merge",
            FaultKind::UpdateShardCount => "update-shard-count",
            FaultKind::GracefulRestart => "graceful-restart",
        }
    }

    /// Whether it reshards the stream.
    pub fn is_reshard(self) -> bool {
        matches!(
            self,
            FaultKind::Split | FaultKind::Merge | FaultKind::UpdateShardCount
        )
    }
}

/// A fault as injected.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// The worker, `emulator` or `stream`.
    pub target: String,
    /// When the fault took hold (ms since the epoch).
    pub start_ms: u64,
    /// When it was undone (or, for a reshard, when the stream was ACTIVE again).
    pub end_ms: u64,
    /// How it went.
    pub detail: String,
    /// The shards a reshard created.
    pub created_shards: Option<Vec<String>>,
}

impl Fault {
    /// `F <start ms> <end ms> <kind> <target> <created shards, comma-separated|-> <detail>`.
    pub fn line(&self) -> String {
        let created = match &self.created_shards {
            Some(created) if !created.is_empty() => created.join(","),
            Some(_) => ",".to_owned(),
            None => "-".to_owned(),
        };
        format!(
            "F {} {} {} {} {created} {}\n",
            self.start_ms,
            self.end_ms,
            self.kind.name(),
            self.target,
            self.detail
        )
    }

    /// Reads a [`Fault::line`] back.
    pub fn parse(line: &str) -> Option<Fault> {
        let mut fields = line.splitn(7, ' ');
        if fields.next()? != "F" {
            return None;
        }
        let start_ms = fields.next()?.parse().ok()?;
        let end_ms = fields.next()?.parse().ok()?;
        let kind = fields.next()?;
        let kind = *FaultKind::ALL.iter().find(|k| k.name() == kind)?;
        let target = fields.next()?.to_owned();
        let created_shards = match fields.next()? {
            "-" => None,
            list => Some(
                list.split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        Some(Fault {
            kind,
            target,
            start_ms,
            end_ms,
            detail: fields.next().unwrap_or("").to_owned(),
            created_shards,
        })
    }
}

/// Everything the containers logged.
struct Logs {
    acks: Vec<Ack>,
    events: Vec<ProcessorEvent>,
    lease_writes: Vec<LeaseWrite>,
    unreadable: usize,
}

fn read_logs(dir: &Path) -> anyhow::Result<Logs> {
    let mut logs = Logs {
        acks: Vec::new(),
        events: Vec::new(),
        lease_writes: Vec::new(),
        unreadable: 0,
    };
    // In name order, so that a report of the same logs comes out the same.
    let mut paths = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for line in text.lines().filter(|line| !line.is_empty()) {
            let parsed = if name == "producer.log" {
                Ack::parse(line).map(|ack| logs.acks.push(ack))
            } else if name.ends_with(".records") {
                ProcessorEvent::parse(line).map(|event| logs.events.push(event))
            } else if name == "faults.log" {
                Some(())
            } else if name.ends_with(".leases") {
                LeaseWrite::parse(line).map(|write| logs.lease_writes.push(write))
            } else {
                Some(())
            };
            if parsed.is_none() {
                logs.unreadable += 1;
            }
        }
    }
    Ok(logs)
}

/// Acknowledged records no processor logged yet.
pub fn unprocessed(dir: &Path) -> anyhow::Result<usize> {
    let logs = read_logs(dir)?;
    let processed: HashSet<(&str, &str)> = logs
        .events
        .iter()
        .filter(|event| event.kind == 'R')
        .map(|event| (event.shard.as_str(), event.detail[0].as_str()))
        .collect();
    Ok(logs
        .acks
        .iter()
        .filter(|ack| !processed.contains(&(ack.shard.as_str(), ack.sequence.as_str())))
        .count())
}

/// The checks' results for one seed.
#[derive(Debug, Default)]
pub struct Report {
    acknowledged: usize,
    processed: usize,
    deliveries: usize,
    lost: Vec<String>,
    order_violations: Vec<String>,
    checkpoints_backwards: Vec<String>,
    checkpoints_not_owner: Vec<String>,
    counters_reused: Vec<String>,
    checkpoints_unverified: usize,
    processing_after_expiry: Vec<String>,
    redeliveries: BTreeMap<String, usize>,
    unexplained_redeliveries: Vec<String>,
    producer_duplicates: usize,
    /// Per fault: affected shards, recovered shards, seconds until the last affected shard
    /// processed a record acknowledged after the fault.
    recovery: Vec<(usize, usize, Option<f64>)>,
    /// Redeliveries per fault index.
    redeliveries_by_fault: HashMap<usize, usize>,
    acked_per_second: f64,
    processed_per_second: f64,
    drained: bool,
    unreadable_lines: usize,
}

fn checkpoint_rank(position: &str) -> ((u8, usize, &str), u64) {
    let (sequence, sub) = position.split_once('.').unwrap_or((position, "0"));
    (position_rank(sequence), sub.parse().unwrap_or(0))
}

/// A lease's owner and checkpoint owner.
type Holders = (Option<String>, Option<String>);

/// The lease's owner and checkpoint owner right after a successful write.
fn state_after(write: &LeaseWrite) -> (u64, Option<String>, Option<String>) {
    let counter = write.expected_counter;
    match write.op.as_str() {
        "create" => (counter, None, None),
        "take" => (counter + 1, write.new_owner.clone(), None),
        "evict" => (counter + 1, None, None),
        "start_handoff" => (
            counter,
            write.new_owner.clone(),
            write.expected_owner.clone(),
        ),
        "complete_handoff" => (counter + 1, write.expected_owner.clone(), None),
        "assign" => (counter + 1, write.new_owner.clone(), None),
        // The owner stays while a handoff is under way (the checkpoint owner is dropped).
        "unassign" => (
            counter + 1,
            write
                .checkpoint_owner
                .as_ref()
                .and(write.expected_owner.clone()),
            None,
        ),
        _ => (
            counter + 1,
            write.expected_owner.clone(),
            write.checkpoint_owner.clone(),
        ),
    }
}

/// Scheduling slack beyond the failover time before a batch counts as processed after expiry:
/// the renewer looks at its leases every third of the failover time, and a batch already
/// handed over when the lease expired is not the worker's choice.
const STALE_SLACK_MS: u64 = 1_000;

/// Reads the logs in `dir` and runs the checks. `started_ms`/`produced_until_ms` bound the
/// producer's run; `drained` says whether the drain completed.
pub fn analyze(
    dir: &Path,
    faults: &[Fault],
    failover_ms: u64,
    started_ms: u64,
    produced_until_ms: u64,
    drained: bool,
) -> anyhow::Result<Report> {
    let logs = read_logs(dir)?;
    let mut report = Report {
        drained,
        unreadable_lines: logs.unreadable,
        acknowledged: logs.acks.len(),
        ..Report::default()
    };
    let records: Vec<&ProcessorEvent> = logs.events.iter().filter(|e| e.kind == 'R').collect();
    report.deliveries = records.len();

    // Acknowledged but never processed.
    let processed: HashSet<(&str, &str)> = records
        .iter()
        .map(|event| (event.shard.as_str(), event.detail[0].as_str()))
        .collect();
    report.processed = processed.len();
    for ack in &logs.acks {
        if !processed.contains(&(ack.shard.as_str(), ack.sequence.as_str())) {
            report.lost.push(format!(
                "{}:{} ({} {})",
                ack.key, ack.counter, ack.shard, ack.sequence
            ));
        }
    }
    let mut by_payload: HashMap<(&str, u64), usize> = HashMap::new();
    for ack in &logs.acks {
        *by_payload
            .entry((ack.key.as_str(), ack.counter))
            .or_default() += 1;
    }
    report.producer_duplicates = by_payload.values().map(|n| n - 1).sum();

    // Order within each processor: sequence numbers strictly increasing, key counters never
    // going down. Events of one processor are in the order it wrote them.
    let mut last_sequence: HashMap<&ProcessorId, &str> = HashMap::new();
    let mut last_counter: HashMap<(&ProcessorId, &str), u64> = HashMap::new();
    for event in &records {
        let sequence = event.detail[0].as_str();
        if let Some(previous) = last_sequence.insert(&event.processor, sequence) {
            if position_rank(previous) >= position_rank(sequence) {
                report.order_violations.push(format!(
                    "{} in {:?}: sequence {sequence} after {previous}",
                    event.shard, event.processor
                ));
            }
        }
        if let Some((key, counter)) = crate::logs::parse_payload(&event.detail[1]) {
            if let Some(previous) = last_counter.insert((&event.processor, key), counter) {
                if counter < previous {
                    report.order_violations.push(format!(
                        "key {key} in {:?}: counter {counter} after {previous}",
                        event.processor
                    ));
                }
            }
        }
    }

    // Redeliveries: a (shard, sequence) delivered again. The cause is the fault that came
    // between the two deliveries and hit the worker of the earlier one (it processed the record
    // and then could not checkpoint it), or else an emulator crash between them, or else any
    // fault between them; with none, the lease moved between live workers.
    let mut by_time = records.clone();
    by_time.sort_by_key(|event| event.time_ms);
    let mut previous: HashMap<(&str, &str), &ProcessorEvent> = HashMap::new();
    for event in by_time {
        let key = (event.shard.as_str(), event.detail[0].as_str());
        let Some(earlier) = previous.insert(key, event) else {
            continue;
        };
        let between = |fault: &&Fault| {
            fault.start_ms <= event.time_ms && fault.end_ms >= earlier.time_ms.saturating_sub(1_000)
        };
        let candidates: Vec<(usize, &Fault)> = faults
            .iter()
            .enumerate()
            .filter(|(_, fault)| between(fault))
            .collect();
        let cause = candidates
            .iter()
            .find(|(_, fault)| fault.target == earlier.processor.worker)
            .or_else(|| {
                candidates
                    .iter()
                    .find(|(_, fault)| fault.kind == FaultKind::EmulatorKill)
            })
            .or_else(|| candidates.last());
        match cause {
            Some((index, fault)) => {
                *report
                    .redeliveries
                    .entry(fault.kind.name().to_owned())
                    .or_default() += 1;
                *report.redeliveries_by_fault.entry(*index).or_default() += 1;
            }
            None => {
                *report
                    .redeliveries
                    .entry("no fault (lease moved)".to_owned())
                    .or_default() += 1;
                if report.unexplained_redeliveries.len() < 10 {
                    report.unexplained_redeliveries.push(format!(
                        "{} {}: {:?} at {}, again {:?} at {}",
                        event.shard,
                        event.detail[0],
                        earlier.processor,
                        earlier.time_ms,
                        event.processor,
                        event.time_ms
                    ));
                }
            }
        }
    }

    // Lease writes: the state (owner, checkpoint owner) each successful write left at each
    // counter, then every successful checkpoint against it.
    let mut by_lease: BTreeMap<&str, Vec<&LeaseWrite>> = BTreeMap::new();
    for write in logs
        .lease_writes
        .iter()
        .filter(|w| w.succeeded() && w.op != HEARTBEAT)
    {
        by_lease
            .entry(write.lease.as_str())
            .or_default()
            .push(write);
    }
    for (lease, writes) in &mut by_lease {
        writes.sort_by_key(|write| (write.expected_counter, write.time_ms));
        let mut states: HashMap<u64, Vec<Holders>> = HashMap::new();
        let mut bumped_from: HashMap<u64, &LeaseWrite> = HashMap::new();
        for write in writes.iter() {
            let (counter, owner, checkpoint_owner) = state_after(write);
            states
                .entry(counter)
                .or_default()
                .push((owner, checkpoint_owner));
            if !matches!(write.op.as_str(), "create" | "start_handoff") {
                if let Some(other) = bumped_from.insert(write.expected_counter, write) {
                    report.counters_reused.push(format!(
                        "{lease} counter {}: {} by {} at {} and {} by {} at {}",
                        write.expected_counter,
                        other.op,
                        other.worker,
                        other.time_ms,
                        write.op,
                        write.worker,
                        write.time_ms
                    ));
                }
            }
        }
        let mut last_checkpoint: Option<&LeaseWrite> = None;
        for write in writes.iter().filter(|write| write.op == "checkpoint") {
            match states.get(&write.expected_counter) {
                None => report.checkpoints_unverified += 1,
                Some(holders) => {
                    let holds = holders.iter().any(|(owner, checkpoint_owner)| {
                        owner.as_deref() == Some(write.worker.as_str())
                            || checkpoint_owner.as_deref() == Some(write.worker.as_str())
                    });
                    if !holds {
                        report.checkpoints_not_owner.push(format!(
                            "{lease}: {} checkpointed at counter {} held by {holders:?}",
                            write.worker, write.expected_counter
                        ));
                    }
                }
            }
            let position = write.checkpoint.as_deref().unwrap_or("");
            if let Some(previous) = last_checkpoint {
                let before = previous.checkpoint.as_deref().unwrap_or("");
                if checkpoint_rank(position) < checkpoint_rank(before) {
                    report.checkpoints_backwards.push(format!(
                        "{lease}: {position} by {} (counter {}) after {before} by {} (counter {})",
                        write.worker,
                        write.expected_counter,
                        previous.worker,
                        previous.expected_counter
                    ));
                }
            }
            last_checkpoint = Some(write);
        }
    }

    // Processing after the worker's own lease expired: a batch handed to a processor when its
    // worker had not renewed (or taken, or checkpointed) that lease for longer than the
    // failover time. The worker must have stopped by then: another may own the shard already.
    // Under KCL 3's liveness by heartbeat a worker keeps its leases by its heartbeats (it drops
    // them all once it had none for the failover time) and gains them by the leader's
    // assignment; KCL 2 workers log no heartbeats.
    let mut own_writes: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
    let mut heartbeats: HashMap<&str, Vec<u64>> = HashMap::new();
    for write in logs.lease_writes.iter().filter(|w| w.succeeded()) {
        match write.op.as_str() {
            "take" | "renew" | "checkpoint" => own_writes
                .entry((write.worker.as_str(), write.lease.as_str()))
                .or_default()
                .push(write.time_ms),
            // The new owner gains the lease by the leader's assignment or by the old owner's
            // completed handoff.
            "assign" | "complete_handoff" => {
                let owner = if write.op == "assign" {
                    write.new_owner.as_deref()
                } else {
                    write.expected_owner.as_deref()
                };
                if let Some(owner) = owner {
                    own_writes
                        .entry((owner, write.lease.as_str()))
                        .or_default()
                        .push(write.time_ms);
                }
            }
            HEARTBEAT => heartbeats
                .entry(write.worker.as_str())
                .or_default()
                .push(write.time_ms),
            _ => {}
        }
    }
    for times in own_writes.values_mut().chain(heartbeats.values_mut()) {
        times.sort_unstable();
    }
    let last_before = |times: &[u64], at: u64| {
        times
            .partition_point(|t| *t <= at)
            .checked_sub(1)
            .map(|i| times[i])
    };
    let mut stale_batches: HashSet<(&ProcessorId, u64)> = HashSet::new();
    for event in &records {
        let Some(times) = own_writes.get(&(event.processor.worker.as_str(), event.shard.as_str()))
        else {
            continue;
        };
        let Some(last_write) = last_before(times, event.time_ms) else {
            continue;
        };
        // Heartbeats keep the lease only while they come without a gap longer than the
        // failover time since that write: after such a gap the worker must have dropped it.
        let beats: &[u64] = heartbeats
            .get(event.processor.worker.as_str())
            .map_or(&[], Vec::as_slice);
        let from = beats.partition_point(|t| *t <= last_write);
        let to = beats.partition_point(|t| *t <= event.time_ms);
        let mut last = last_write;
        for beat in &beats[from..to] {
            if beat - last > failover_ms + STALE_SLACK_MS {
                break;
            }
            last = *beat;
        }
        if event.time_ms - last > failover_ms + STALE_SLACK_MS
            && stale_batches.insert((&event.processor, event.time_ms))
            && report.processing_after_expiry.len() < 1_000
        {
            report.processing_after_expiry.push(format!(
                "{} by {:?} at {}: last own lease write {} ms before",
                event.shard,
                event.processor,
                event.time_ms,
                event.time_ms - last
            ));
        }
    }

    // Recovery: per fault, the affected shards (the leases the target worker held, every held
    // lease for the emulator, the created shards for a reshard) and how long until each
    // processed a record acknowledged after the fault started.
    let ack_time: HashMap<(&str, &str), u64> = logs
        .acks
        .iter()
        .map(|ack| ((ack.shard.as_str(), ack.sequence.as_str()), ack.time_ms))
        .collect();
    for fault in faults {
        let affected: Vec<String> = match &fault.created_shards {
            Some(created) => created.clone(),
            None => by_lease
                .iter()
                .filter_map(|(lease, writes)| {
                    let last = writes
                        .iter()
                        .filter(|write| write.time_ms <= fault.start_ms)
                        .max_by_key(|write| (write.time_ms, write.expected_counter))?;
                    let ended = writes.iter().any(|write| {
                        write.time_ms <= fault.start_ms
                            && write
                                .checkpoint
                                .as_deref()
                                .is_some_and(|c| c.starts_with("SHARD_END"))
                    });
                    let (_, owner, _) = state_after(last);
                    let owner = owner?;
                    let hit = fault.kind == FaultKind::EmulatorKill || owner == fault.target;
                    (hit && !ended).then(|| lease.to_string())
                })
                .collect(),
        };
        let mut recovered = 0;
        let mut slowest: Option<u64> = None;
        for shard in &affected {
            // The earliest such delivery: `records` is in no particular order across workers.
            let first = records
                .iter()
                .filter(|event| event.shard == *shard && event.time_ms >= fault.start_ms)
                .filter(|event| {
                    ack_time
                        .get(&(event.shard.as_str(), event.detail[0].as_str()))
                        .is_some_and(|acked| *acked >= fault.start_ms)
                })
                .map(|event| event.time_ms)
                .min();
            if let Some(time_ms) = first {
                recovered += 1;
                let took = time_ms - fault.start_ms;
                slowest = Some(slowest.map_or(took, |s| s.max(took)));
            }
        }
        report.recovery.push((
            affected.len(),
            recovered,
            slowest.map(|ms| ms as f64 / 1000.0),
        ));
    }

    let produce_secs = (produced_until_ms.saturating_sub(started_ms)) as f64 / 1000.0;
    report.acked_per_second = report.acknowledged as f64 / produce_secs.max(1.0);
    if let (Some(first), Some(last)) = (
        records.iter().map(|e| e.time_ms).min(),
        records.iter().map(|e| e.time_ms).max(),
    ) {
        report.processed_per_second =
            report.deliveries as f64 / ((last - first) as f64 / 1000.0).max(1.0);
    }
    Ok(report)
}

fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    Some(sorted[index])
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"))
}

impl Report {
    /// Whether every must-be-zero figure is zero and the drain completed.
    pub fn passed(&self) -> bool {
        self.drained
            && self.lost.is_empty()
            && self.order_violations.is_empty()
            && self.checkpoint_violations() == 0
            && self.processing_after_expiry.is_empty()
    }

    fn checkpoint_violations(&self) -> usize {
        self.checkpoints_backwards.len()
            + self.checkpoints_not_owner.len()
            + self.counters_reused.len()
    }

    fn recovery_times(&self) -> Vec<f64> {
        let mut times: Vec<f64> = self.recovery.iter().filter_map(|r| r.2).collect();
        times.sort_by(f64::total_cmp);
        times
    }

    /// The one-line summary.
    pub fn summary(&self, seed: u64, mode: &str, coordination: &str, workers: usize) -> String {
        let duplicates: usize = self.redeliveries.values().sum();
        let causes: Vec<String> = self
            .redeliveries
            .iter()
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
        let times = self.recovery_times();
        format!(
            "chaos seed={seed} mode={mode} coordination={coordination} workers={workers} faults={} {} acked={} processed={} \
             lost={} order_violations={} checkpoint_violations={} (backwards {}, not owner {}, \
             counter reused {}, unverified {}) batches_after_lease_expiry={} redeliveries={duplicates} ({}) \
             producer_duplicates={} recovery_p50={} recovery_max={} acked_rate={:.0}/s \
             processed_rate={:.0}/s drained={} unreadable_lines={}",
            self.recovery.len(),
            if self.passed() { "PASS" } else { "FAIL" },
            self.acknowledged,
            self.processed,
            self.lost.len(),
            self.order_violations.len(),
            self.checkpoint_violations(),
            self.checkpoints_backwards.len(),
            self.checkpoints_not_owner.len(),
            self.counters_reused.len(),
            self.checkpoints_unverified,
            self.processing_after_expiry.len(),
            if causes.is_empty() {
                "none".to_owned()
            } else {
                causes.join(", ")
            },
            self.producer_duplicates,
            seconds(percentile(&times, 0.5)),
            seconds(times.last().copied()),
            self.acked_per_second,
            self.processed_per_second,
            if self.drained { "yes" } else { "no" },
            self.unreadable_lines,
        )
    }

    /// The per-fault table, then the first few examples of each failed check.
    pub fn print_table(&self, faults: &[Fault], started_ms: u64) {
        println!(
            "{:>3} {:>8} {:<18} {:<8} {:>8} {:>9} {:>10} {:>12}  detail",
            "#", "at", "fault", "target", "shards", "recovered", "recovery", "redeliveries"
        );
        for (index, (fault, (affected, recovered, time))) in
            faults.iter().zip(&self.recovery).enumerate()
        {
            println!(
                "{:>3} {:>7.1}s {:<18} {:<8} {:>8} {:>9} {:>10} {:>12}  {}",
                index + 1,
                fault.start_ms.saturating_sub(started_ms) as f64 / 1000.0,
                fault.kind.name(),
                fault.target,
                affected,
                recovered,
                seconds(*time),
                self.redeliveries_by_fault.get(&index).copied().unwrap_or(0),
                fault.detail
            );
        }
        for (what, examples) in [
            ("acknowledged, never processed", &self.lost),
            ("order violations", &self.order_violations),
            ("checkpoints going backwards", &self.checkpoints_backwards),
            (
                "checkpoints by a worker not holding the lease",
                &self.checkpoints_not_owner,
            ),
            ("lease counters written twice", &self.counters_reused),
            (
                "batches processed after the worker's lease expired",
                &self.processing_after_expiry,
            ),
            (
                "redeliveries without a fault",
                &self.unexplained_redeliveries,
            ),
        ] {
            if !examples.is_empty() {
                println!("{what}: {} (first ones below)", examples.len());
                for example in examples.iter().take(10) {
                    println!("  {example}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record delivered twice after a split: late by `w1` (a worker whose log sorts first),
    /// early by `w2`. The recovery is the early delivery, whichever log is read first.
    #[test]
    fn recovery_is_the_earliest_delivery_in_any_log() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("producer.log", "A 1500 k1 0 s-child 11\n");
        write("w1.records", "R 9000 w1 1 0 s-child 11 k1:0\n");
        write("w2.records", "R 2000 w2 1 0 s-child 11 k1:0\n");
        write("faults.log", "");
        let split = Fault {
            kind: FaultKind::Split,
            target: "stream".to_owned(),
            start_ms: 1000,
            end_ms: 1100,
            detail: "split s-parent".to_owned(),
            created_shards: Some(vec!["s-child".to_owned()]),
        };
        let report = analyze(dir.path(), &[split], 10_000, 0, 10_000, true).unwrap();
        assert_eq!(report.recovery, [(1, 1, Some(1.0))]);
    }
}
