//! The subcommands: each reads the table (and the stream where it needs to), then prints a
//! table for people or JSON for scripts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use kcl_lease::{
    CheckpointUpdate, DynamoDbLeaseStore, Lease, LeaseStore, StoredCheckpoint, TableConfig,
};
use serde_json::{json, Value};

use crate::aws::{explain, has_code, Clients, Target};
use crate::kinesis::{self, Backlog, StreamRef};
use crate::observe::{checkpoint_label, columns, epoch_millis, human_millis, Observer};
use crate::table::{self, Entry, Snapshot};
use crate::{CheckpointCommand, Cli, Command, Global};

/// How often `leases --sample` scans the table.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Runs the command line's subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let clients = Clients::connect(&Target {
        endpoint: cli.global.endpoint.clone(),
        region: cli.global.region.clone(),
    })
    .await;
    let global = &cli.global;
    let table_of = |app: &str| global.table.clone().unwrap_or_else(|| app.to_owned());
    match &cli.command {
        Command::Leases { app, sample } => leases(&clients, global, &table_of(app), *sample).await,
        Command::Lag {
            app,
            stream,
            stuck_after,
            max_records,
        } => {
            let stream = stream.stream.as_deref().map(StreamRef::parse);
            lag(
                &clients,
                global,
                &table_of(app),
                stream.as_ref(),
                *stuck_after,
                *max_records,
            )
            .await
        }
        Command::Checkpoint(CheckpointCommand::Set {
            app,
            shard,
            stream,
            to,
            force,
        }) => {
            let stream = stream.stream.as_deref().map(StreamRef::parse);
            checkpoint_set(
                &clients,
                global,
                &table_of(app),
                shard,
                stream.as_ref(),
                to,
                *force,
            )
            .await
        }
        Command::Checkpoint(CheckpointCommand::Rewind {
            app,
            stream,
            to,
            force,
        }) => {
            let stream = stream.stream.as_deref().map(StreamRef::parse);
            rewind(
                &clients,
                global,
                &table_of(app),
                stream.as_ref(),
                to,
                *force,
            )
            .await
        }
        Command::Cleanup {
            app,
            stream,
            dry_run,
        } => {
            let stream = stream.stream.as_deref().map(StreamRef::parse);
            cleanup(&clients, global, &table_of(app), stream.as_ref(), *dry_run).await
        }
        Command::Drain {
            app,
            worker,
            undo,
            no_wait,
            timeout,
        } => {
            let wait = (!*undo && !*no_wait).then_some(*timeout);
            drain(&clients, global, &table_of(app), worker, *undo, wait).await
        }
        Command::Fleet {
            app,
            stream,
            watch,
            once: _,
            interval,
            max_records,
        } => {
            let stream = stream.stream.as_deref().map(StreamRef::parse);
            let view = FleetView {
                clients: &clients,
                global,
                app,
                table: &table_of(app),
                stream: stream.as_ref(),
                max_records: *max_records,
            };
            view.run(*watch, *interval).await
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

fn lineage(lease: &Lease) -> String {
    let mut parts = Vec::new();
    if !lease.parent_shard_ids.is_empty() {
        parts.push(format!(
            "parents {}",
            lease
                .parent_shard_ids
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if !lease.child_shard_ids.is_empty() {
        parts.push(format!(
            "children {}",
            lease
                .child_shard_ids
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

fn checkpoint_json(checkpoint: Option<&StoredCheckpoint>) -> Value {
    checkpoint.map_or(Value::Null, |cp| {
        json!({"sequenceNumber": cp.sequence_number, "subSequenceNumber": cp.sub_sequence_number})
    })
}

/// Scans `table` every [`SAMPLE_EVERY`] for `sample`, feeding the observer; returns the last scan.
async fn watch_table(
    clients: &Clients,
    table: &str,
    sample: Duration,
    observer: &mut Observer,
) -> anyhow::Result<Snapshot> {
    let started = Instant::now();
    loop {
        let snapshot = table::scan(&clients.dynamodb, table).await?;
        observer.observe(&snapshot, Instant::now());
        if started.elapsed() >= sample {
            return Ok(snapshot);
        }
        tokio::time::sleep(SAMPLE_EVERY.min(sample)).await;
    }
}

async fn leases(
    clients: &Clients,
    global: &Global,
    table: &str,
    sample: Duration,
) -> anyhow::Result<ExitCode> {
    table::check_lease_table(&clients.dynamodb, table).await?;
    let mut observer = Observer::new(Instant::now());
    let snapshot = watch_table(clients, table, sample, &mut observer).await?;
    let now = Instant::now();
    let now_s = epoch_millis() / 1000;
    let leases: Vec<&Lease> = snapshot.leases().collect();
    if global.json {
        let rows: Vec<Value> = leases
            .iter()
            .map(|lease| {
                let renewed = observer.renewal_age(lease, now);
                let checkpointed = observer.checkpoint_age(lease, now);
                json!({
                    "leaseKey": lease.lease_key,
                    "shardId": lease.shard_id(),
                    "owner": lease.lease_owner,
                    "checkpointOwner": lease.checkpoint_owner,
                    "counter": lease.lease_counter,
                    "checkpoint": checkpoint_json(lease.checkpoint.as_ref()),
                    "pendingCheckpoint": checkpoint_json(lease.pending_checkpoint.as_ref()),
                    "ownerSwitchesSinceCheckpoint": lease.owner_switches_since_checkpoint,
                    "parentShardIds": lease.parent_shard_ids,
                    "childShardIds": lease.child_shard_ids,
                    "shardEnded": lease.is_shard_end(),
                    "throughputKBps": lease.throughput_kbps,
                    "lastRenewalAgeMillis": renewed.millis(),
                    "lastRenewalAgeIsLowerBound": matches!(renewed, crate::observe::Age::Over(_)),
                    "lastCheckpointAgeMillis": checkpointed.millis(),
                    "lastCheckpointAgeIsLowerBound": matches!(checkpointed, crate::observe::Age::Over(_)),
                })
            })
            .collect();
        let others: Vec<Value> = snapshot
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Other { key, entity_type } => {
                    Some(json!({"key": key, "entityType": entity_type}))
                }
                _ => None,
            })
            .collect();
        print_json(&json!({
            "table": table,
            "sampledMillis": sample.as_millis() as u64,
            "leases": rows,
            "leader": snapshot.leader().map(table::leader_json),
            "workerMetrics": snapshot.worker_metrics().map(|m| table::worker_json(m, now_s)).collect::<Vec<_>>(),
            "migration": snapshot.migration().map(table::migration_json),
            "otherItems": others,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|lease| {
            let owner = match (&lease.lease_owner, &lease.checkpoint_owner) {
                (Some(owner), Some(from)) => format!("{owner} (handoff from {from})"),
                (Some(owner), None) => owner.clone(),
                (None, _) => "-".to_owned(),
            };
            vec![
                lease.lease_key.clone(),
                owner,
                lease.lease_counter.to_string(),
                checkpoint_label(lease.checkpoint.as_ref()),
                lineage(lease),
                observer.renewal_age(lease, now).label(),
                observer.checkpoint_age(lease, now).label(),
            ]
        })
        .collect();
    let mut out = format!("Leases of {table} ({} leases)\n", leases.len());
    out.push_str(&columns(
        &[
            "SHARD",
            "OWNER",
            "COUNTER",
            "CHECKPOINT",
            "LINEAGE",
            "RENEWED",
            "CHECKPOINTED",
        ],
        &rows,
    ));
    out.push_str(&kcl3_sections(&snapshot, &leases, now_s));
    if sample.is_zero() {
        out.push_str("\nAges need --sample above 0s: the table holds no timestamps.\n");
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The KCL 3 items of a table, for people: the leader and its successor, each worker's
/// heartbeat, report age, CPU and drain flag with the leases it holds, the migration state.
fn kcl3_sections(snapshot: &Snapshot, leases: &[&Lease], now_s: u64) -> String {
    let mut out = String::new();
    if let Some(leader) = snapshot.leader() {
        out.push_str(&format!(
            "\nLeader (KCL 3)\n{}",
            columns(
                &[
                    "OWNER",
                    "SUCCESSOR",
                    "LEASE DURATION",
                    "LIVENESS",
                    "RECORD VERSION"
                ],
                &[vec![
                    leader.owner.clone(),
                    leader.successor.clone().unwrap_or_else(|| "-".into()),
                    human_millis(leader.lease_duration_ms as i64),
                    if leader.liveness_by_heartbeat {
                        "heartbeat".to_owned()
                    } else {
                        "lease counters (Java)".to_owned()
                    },
                    leader.record_version.clone(),
                ]],
            )
        ));
    }
    let workers: Vec<Vec<String>> = snapshot
        .worker_metrics()
        .map(|m| {
            let held = leases
                .iter()
                .filter(|l| l.lease_owner.as_deref() == Some(m.worker_id.as_str()))
                .count();
            vec![
                m.worker_id.clone(),
                held.to_string(),
                m.heartbeat.map_or("- (Java)".into(), |hbc| hbc.to_string()),
                if m.last_update_secs == 0 {
                    "-".to_owned()
                } else {
                    format!("{}s ago", now_s.saturating_sub(m.last_update_secs))
                },
                table::latest_cpu(m).map_or("-".into(), |cpu| format!("{cpu:.0}%")),
                if m.draining { "yes" } else { "no" }.to_owned(),
                table::metrics_summary(m),
            ]
        })
        .collect();
    if !workers.is_empty() {
        out.push_str(&format!(
            "\nWorkers (KCL 3)\n{}",
            columns(
                &[
                    "WORKER",
                    "LEASES",
                    "HEARTBEAT",
                    "REPORTED",
                    "CPU",
                    "DRAINING",
                    "METRICS"
                ],
                &workers
            )
        ));
    }
    for entry in &snapshot.entries {
        match entry {
            Entry::Migration(m) => {
                out.push_str(&format!(
                    "\nMigration (KCL 3)\nclient version {} (set by {} at {})\n",
                    m.client_version,
                    if m.modified_by.is_empty() {
                        "-"
                    } else {
                        &m.modified_by
                    },
                    utc_time(m.modified_at_ms)
                ));
                for earlier in &m.history {
                    out.push_str(&format!(
                        "  before: {} (set by {} at {})\n",
                        earlier.client_version,
                        earlier.modified_by,
                        utc_time(earlier.modified_at_ms)
                    ));
                }
            }
            Entry::Other { key, entity_type } => {
                out.push_str(&format!("\nOther item {key} ({entity_type})\n"))
            }
            _ => {}
        }
    }
    out
}

/// An epoch-milliseconds time as RFC 3339 UTC.
fn utc_time(epoch_ms: u64) -> String {
    DateTime::from_millis(epoch_ms as i64)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| epoch_ms.to_string())
}

/// How often `drain` looks whether the worker still holds leases.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// The leases `worker` still processes: those it owns (from the owner index) and, when it owns
/// none any more, those it is still handing off (`checkpointOwner`, which the index does not
/// show; one scan at the end).
async fn leases_still_held(
    store: &DynamoDbLeaseStore,
    worker: &str,
) -> anyhow::Result<Vec<String>> {
    let owned = store
        .lease_keys_of_owner(worker)
        .await
        .context("looking up the worker's leases")?;
    if !owned.is_empty() {
        return Ok(owned);
    }
    Ok(store
        .list_leases()
        .await
        .context("reading the leases")?
        .into_iter()
        .filter(|l| {
            l.lease_owner.as_deref() == Some(worker)
                || l.checkpoint_owner.as_deref() == Some(worker)
        })
        .map(|l| l.lease_key)
        .collect())
}

/// Sets (or with `undo` clears) the worker's drain flag; then, with `wait`, waits at most that
/// long until it holds no leases, printing each change.
async fn drain(
    clients: &Clients,
    global: &Global,
    table: &str,
    worker: &str,
    undo: bool,
    wait: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    table::check_lease_table(&clients.dynamodb, table).await?;
    let store = lease_store(clients, table);
    if !undo && store.get_leader_lock().await?.is_none() {
        let mode = match store.get_migration_state().await? {
            Some(m) => format!("its migration state is {}", m.client_version),
            None => "it has no migration state".to_owned(),
        };
        bail!(
            "no KCL 3 leader in {table} ({mode}): draining needs a KCL 3 leader to move the \
             worker's leases; in KCL 2 mode workers take leases themselves. Stop the worker \
             gracefully instead: it hands its leases back as it shuts down"
        );
    }
    if !store.set_worker_draining(worker, !undo).await? {
        bail!(
            "no worker {worker} in {table}: it has no metrics item (KCL 3 workers write one as \
             they start; `kcl leases {table}` lists the workers)"
        );
    }
    if undo {
        if global.json {
            print_json(&json!({"worker": worker, "draining": false}));
        } else {
            println!("{worker} is no longer draining: the leader may give it leases again");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut held = leases_still_held(&store, worker).await?;
    if !global.json {
        println!(
            "{worker} is draining: the leader hands its {} lease(s) to other workers",
            held.len()
        );
    }
    let Some(timeout) = wait else {
        if global.json {
            print_json(&json!({"worker": worker, "draining": true, "leasesHeld": held}));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let started = Instant::now();
    let mut shown = held.len();
    while !held.is_empty() && started.elapsed() < timeout {
        tokio::time::sleep(DRAIN_POLL).await;
        held = leases_still_held(&store, worker).await?;
        if held.len() != shown && !held.is_empty() && !global.json {
            println!(
                "  {:>5}  {} lease(s) left",
                human_millis(started.elapsed().as_millis() as i64),
                held.len()
            );
        }
        shown = held.len();
    }
    let drained = held.is_empty();
    if global.json {
        print_json(&json!({
            "worker": worker,
            "draining": true,
            "drained": drained,
            "leasesHeld": held,
            "waitedMillis": started.elapsed().as_millis() as u64,
        }));
    } else if drained {
        println!(
            "{worker} holds no leases (after {}); it gets none until `kcl drain {table} {worker} --undo`",
            human_millis(started.elapsed().as_millis() as i64)
        );
    } else {
        println!(
            "{worker} still holds {} lease(s) after {}: {}. Is the leader running? The flag stays set.",
            held.len(),
            human_millis(timeout.as_millis() as i64),
            held.join(", ")
        );
    }
    Ok(if drained {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One lease's lag.
#[derive(Debug)]
struct LeaseLag {
    lease: Lease,
    backlog: Option<Backlog>,
    status: &'static str,
}

/// The shards of every stream the leases name: leases of shards not listed are not read.
async fn known_shards<'a>(
    clients: &Clients,
    leases: impl Iterator<Item = &'a Lease>,
    stream: Option<&StreamRef>,
) -> anyhow::Result<BTreeMap<StreamRef, BTreeSet<String>>> {
    let mut shards = BTreeMap::new();
    for lease in leases {
        if lease.is_shard_end() {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) =
            shards.entry(StreamRef::of_lease(lease, stream)?)
        {
            let ids = kinesis::shard_ids(&clients.kinesis, slot.key()).await?;
            slot.insert(ids);
        }
    }
    Ok(shards)
}

async fn measure_lag(
    clients: &Clients,
    lease: &Lease,
    stream: Option<&StreamRef>,
    shards: &BTreeMap<StreamRef, BTreeSet<String>>,
    from: Option<&StoredCheckpoint>,
    stuck_after: Duration,
    max_records: u64,
) -> anyhow::Result<LeaseLag> {
    if lease.is_shard_end() {
        return Ok(LeaseLag {
            lease: lease.clone(),
            backlog: Some(Backlog::default()),
            status: "ended",
        });
    }
    let Some(start) = kinesis::start_of(from.or(lease.checkpoint.as_ref())) else {
        return Ok(LeaseLag {
            lease: lease.clone(),
            backlog: None,
            status: "not started",
        });
    };
    let stream = StreamRef::of_lease(lease, stream)?;
    if !shards
        .get(&stream)
        .is_some_and(|ids| ids.contains(lease.shard_id()))
    {
        return Ok(LeaseLag {
            lease: lease.clone(),
            backlog: None,
            status: "shard gone",
        });
    }
    let checkpoint = lease
        .checkpoint
        .as_ref()
        .map(|c| c.sequence_number.as_str())
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
    let backlog = kinesis::read_after(
        &clients.kinesis,
        &stream,
        lease.shard_id(),
        &start,
        checkpoint,
        max_records,
    )
    .await?;
    let waited = backlog
        .oldest_waiting_ms
        .map(|t| epoch_millis() as i64 - t)
        .unwrap_or(0);
    let status = if backlog.waiting > 0 && waited > stuck_after.as_millis() as i64 {
        "stuck"
    } else {
        "ok"
    };
    Ok(LeaseLag {
        lease: lease.clone(),
        backlog: Some(backlog),
        status,
    })
}

fn records_label(backlog: &Backlog) -> String {
    if backlog.capped {
        format!("{}+", backlog.waiting)
    } else {
        backlog.waiting.to_string()
    }
}

async fn lag(
    clients: &Clients,
    global: &Global,
    table: &str,
    stream: Option<&StreamRef>,
    stuck_after: Duration,
    max_records: u64,
) -> anyhow::Result<ExitCode> {
    table::check_lease_table(&clients.dynamodb, table).await?;
    let snapshot = table::scan(&clients.dynamodb, table).await?;
    let shards = known_shards(clients, snapshot.leases(), stream).await?;
    let mut lags = Vec::new();
    for lease in snapshot.leases() {
        lags.push(
            measure_lag(
                clients,
                lease,
                stream,
                &shards,
                None,
                stuck_after,
                max_records,
            )
            .await?,
        );
    }
    // Worst first: longest time behind, then most records.
    lags.sort_by_key(|l| {
        let b = l.backlog.clone().unwrap_or_default();
        (
            std::cmp::Reverse(b.millis_behind()),
            std::cmp::Reverse(b.waiting),
        )
    });
    let total: u64 = lags
        .iter()
        .filter_map(|l| l.backlog.as_ref())
        .map(|b| b.waiting)
        .sum();
    let capped = lags
        .iter()
        .any(|l| l.backlog.as_ref().is_some_and(|b| b.capped));
    let max_behind = lags
        .iter()
        .filter_map(|l| l.backlog.as_ref())
        .map(Backlog::millis_behind)
        .max()
        .unwrap_or(0);
    let stuck: Vec<&str> = lags
        .iter()
        .filter(|l| l.status == "stuck")
        .map(|l| l.lease.lease_key.as_str())
        .collect();
    if global.json {
        let shards: Vec<Value> = lags
            .iter()
            .map(|l| {
                json!({
                    "leaseKey": l.lease.lease_key,
                    "owner": l.lease.lease_owner,
                    "checkpoint": checkpoint_json(l.lease.checkpoint.as_ref()),
                    "recordsBehind": l.backlog.as_ref().map(|b| b.waiting),
                    "recordsBehindIsLowerBound": l.backlog.as_ref().is_some_and(|b| b.capped),
                    "millisBehind": l.backlog.as_ref().map(Backlog::millis_behind),
                    "status": l.status,
                })
            })
            .collect();
        print_json(&json!({
            "table": table,
            "shards": shards,
            "totalRecordsBehind": total,
            "totalIsLowerBound": capped,
            "maxMillisBehind": max_behind,
            "stuck": stuck,
            "stuckAfterMillis": stuck_after.as_millis() as u64,
        }));
    } else {
        let rows: Vec<Vec<String>> = lags
            .iter()
            .map(|l| {
                vec![
                    l.lease.lease_key.clone(),
                    l.lease.lease_owner.clone().unwrap_or_else(|| "-".into()),
                    checkpoint_label(l.lease.checkpoint.as_ref()),
                    l.backlog.as_ref().map_or("-".into(), records_label),
                    l.backlog
                        .as_ref()
                        .map_or("-".into(), |b| human_millis(b.millis_behind())),
                    l.status.to_owned(),
                ]
            })
            .collect();
        print!(
            "{}",
            columns(
                &[
                    "SHARD",
                    "OWNER",
                    "CHECKPOINT",
                    "RECORDS BEHIND",
                    "TIME BEHIND",
                    "STATUS"
                ],
                &rows
            )
        );
        println!(
            "TOTAL {}{} records behind, at most {} behind, {} stuck (no checkpoint past a record older than {})",
            total,
            if capped { "+" } else { "" },
            human_millis(max_behind),
            stuck.len(),
            human_millis(stuck_after.as_millis() as i64)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `checkpoint set` moves a checkpoint.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    TrimHorizon,
    Latest,
    AtTimestamp(DateTime),
    Sequence(String),
}

fn parse_time(text: &str) -> anyhow::Result<DateTime> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(DateTime::from_secs_f64(seconds));
    }
    DateTime::from_str(text, Format::DateTime).with_context(|| {
        format!("{text} is not a time: use RFC 3339 (2024-05-01T10:00:00Z) or epoch seconds")
    })
}

fn parse_position(words: &[String]) -> anyhow::Result<Position> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match words.as_slice() {
        ["trim-horizon"] => Position::TrimHorizon,
        ["latest"] => Position::Latest,
        ["at-timestamp", time] => Position::AtTimestamp(parse_time(time)?),
        ["sequence", number]
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Position::Sequence((*number).to_owned())
        }
        _ => bail!(
            "--to takes trim-horizon, latest, at-timestamp TIME or sequence NUMBER, not {}",
            words.join(" ")
        ),
    })
}

fn lease_store(clients: &Clients, table: &str) -> DynamoDbLeaseStore {
    let mut config = TableConfig::default();
    config.create_if_missing = false;
    DynamoDbLeaseStore::new(clients.dynamodb.clone(), table, config)
}

/// The owner name under which `kcl` holds a lease for the moment of a fenced reset.
fn operator_owner() -> String {
    format!("kcl-operator-{}", std::process::id())
}

/// How a reset went.
#[derive(Debug)]
struct Reset {
    /// The owner that held the lease and lost it to the reset.
    taken_from: Option<String>,
}

/// Writes `checkpoint` into the lease. An unowned lease is written conditional on its counter; an
/// owned one only with `force`, through the fenced path: take it (bumping the counter, so the
/// owner's next renewal or checkpoint fails and it drops the shard as lost), write the
/// checkpoint as the new owner, then release it for the fleet to take and start from there.
async fn reset_lease(
    store: &DynamoDbLeaseStore,
    lease_key: &str,
    checkpoint: &StoredCheckpoint,
    force: bool,
) -> anyhow::Result<Reset> {
    let update = CheckpointUpdate {
        checkpoint: checkpoint.clone(),
        pending_checkpoint: None,
        pending_checkpoint_state: None,
    };
    // Each lost condition means a worker wrote in between: read again and retry a few times.
    for _ in 0..5 {
        let Some(lease) = store.get_lease(lease_key).await? else {
            bail!("no lease {lease_key} in table {}", store.table_name());
        };
        match &lease.lease_owner {
            None => {
                if store.update_checkpoint(&lease, &update).await? {
                    return Ok(Reset { taken_from: None });
                }
            }
            Some(owner) if !force => bail!(
                "lease {lease_key} is held by {owner}: stop that worker, or pass --force to take \
                 the lease from it (it sees the lease lost) and reset it"
            ),
            Some(owner) => {
                let operator = operator_owner();
                if !store.take_lease(&lease, &operator).await? {
                    continue;
                }
                let mut held = lease.clone();
                held.lease_owner = Some(operator);
                held.lease_counter += 1;
                if !store.update_checkpoint(&held, &update).await? {
                    // Taken from us between the two writes: nothing of ours was written.
                    continue;
                }
                held.lease_counter += 1;
                // A failed release leaves the lease to expire; the checkpoint stands either way.
                store.evict_lease(&held).await?;
                return Ok(Reset {
                    taken_from: Some(owner.clone()),
                });
            }
        }
    }
    bail!("lease {lease_key} kept changing while it was being reset; try again")
}

async fn checkpoint_set(
    clients: &Clients,
    global: &Global,
    table: &str,
    lease_key: &str,
    stream: Option<&StreamRef>,
    to: &[String],
    force: bool,
) -> anyhow::Result<ExitCode> {
    let position = parse_position(to)?;
    table::check_lease_table(&clients.dynamodb, table).await?;
    let store = lease_store(clients, table);
    let Some(lease) = store.get_lease(lease_key).await? else {
        bail!("no lease {lease_key} in table {table}");
    };
    let checkpoint = match position {
        Position::TrimHorizon => StoredCheckpoint::new("TRIM_HORIZON"),
        Position::Latest => StoredCheckpoint::new("LATEST"),
        Position::Sequence(n) => StoredCheckpoint::new(n),
        Position::AtTimestamp(at) => {
            let stream = StreamRef::of_lease(&lease, stream)?;
            kinesis::checkpoint_before(&clients.kinesis, &stream, lease.shard_id(), at)
                .await?
                .checkpoint
        }
    };
    let reset = reset_lease(&store, lease_key, &checkpoint, force).await?;
    report_resets(global, &[(lease_key.to_owned(), checkpoint, reset)], &[]);
    Ok(ExitCode::SUCCESS)
}

fn report_resets(
    global: &Global,
    resets: &[(String, StoredCheckpoint, Reset)],
    skipped: &[(String, String)],
) {
    if global.json {
        let rows: Vec<Value> = resets
            .iter()
            .map(|(key, cp, reset)| {
                json!({"leaseKey": key, "checkpoint": checkpoint_json(Some(cp)), "takenFrom": reset.taken_from})
            })
            .collect();
        let skipped: Vec<Value> = skipped
            .iter()
            .map(|(key, why)| json!({"leaseKey": key, "reason": why}))
            .collect();
        print_json(&json!({"reset": rows, "skipped": skipped}));
        return;
    }
    for (key, checkpoint, reset) in resets {
        match &reset.taken_from {
            Some(owner) => println!(
                "{key}: checkpoint set to {} (taken from {owner}, released for the fleet)",
                checkpoint.sequence_number
            ),
            None => println!("{key}: checkpoint set to {}", checkpoint.sequence_number),
        }
    }
    for (key, why) in skipped {
        println!("{key}: unchanged, {why}");
    }
}

async fn rewind(
    clients: &Clients,
    global: &Global,
    table: &str,
    stream: Option<&StreamRef>,
    to: &str,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let at = parse_time(to)?;
    table::check_lease_table(&clients.dynamodb, table).await?;
    let snapshot = table::scan(&clients.dynamodb, table).await?;
    let mut plan = Vec::new();
    let mut skipped = Vec::new();
    for lease in snapshot.leases() {
        let lease_stream = StreamRef::of_lease(lease, stream)?;
        let since =
            kinesis::checkpoint_before(&clients.kinesis, &lease_stream, lease.shard_id(), at)
                .await?;
        if !since.records_since {
            skipped.push((
                lease.lease_key.clone(),
                "no record since that time".to_owned(),
            ));
            continue;
        }
        // A rewind replays; it never moves a checkpoint forward past unprocessed records.
        let current = lease
            .checkpoint
            .as_ref()
            .map(|c| c.sequence_number.as_str());
        let target = since.checkpoint.sequence_number.as_str();
        let already_earlier = match current {
            Some("TRIM_HORIZON") => true,
            Some(cur) if cur.bytes().all(|b| b.is_ascii_digit()) && target != "TRIM_HORIZON" => {
                kinesis::compare_sequence(target, cur) != std::cmp::Ordering::Less
            }
            _ => false,
        };
        if already_earlier {
            skipped.push((
                lease.lease_key.clone(),
                "checkpoint already before that time".to_owned(),
            ));
            continue;
        }
        plan.push((lease.clone(), since.checkpoint));
    }
    let owned: Vec<String> = plan
        .iter()
        .filter_map(|(l, _)| {
            l.lease_owner
                .as_ref()
                .map(|o| format!("{} ({o})", l.lease_key))
        })
        .collect();
    if !owned.is_empty() && !force {
        bail!(
            "leases are held by running workers: {}; stop them, or pass --force to take the \
             leases from them (they see the leases lost) and reset them; nothing was changed",
            owned.join(", ")
        );
    }
    let store = lease_store(clients, table);
    let mut resets = Vec::new();
    for (lease, checkpoint) in plan {
        let reset = reset_lease(&store, &lease.lease_key, &checkpoint, force).await?;
        resets.push((lease.lease_key, checkpoint, reset));
    }
    report_resets(global, &resets, &skipped);
    Ok(ExitCode::SUCCESS)
}

async fn cleanup(
    clients: &Clients,
    global: &Global,
    table: &str,
    stream: Option<&StreamRef>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    table::check_lease_table(&clients.dynamodb, table).await?;
    let snapshot = table::scan(&clients.dynamodb, table).await?;
    let mut shards: BTreeMap<StreamRef, BTreeSet<String>> = BTreeMap::new();
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for lease in snapshot.leases() {
        let lease_stream = StreamRef::of_lease(lease, stream)?;
        if !shards.contains_key(&lease_stream) {
            let ids = kinesis::shard_ids(&clients.kinesis, &lease_stream).await?;
            shards.insert(lease_stream.clone(), ids);
        }
        if shards[&lease_stream].contains(lease.shard_id()) {
            continue;
        }
        if !lease.is_shard_end() {
            kept.push((
                lease.lease_key.clone(),
                "the shard is gone but was not processed to its end (records were lost to \
                 retention); delete it by hand once that is understood"
                    .to_owned(),
            ));
            continue;
        }
        if !dry_run {
            // Conditional on the lease as read: a lease that changed since is left alone.
            let result = clients
                .dynamodb
                .delete_item()
                .table_name(table)
                .key("leaseKey", AttributeValue::S(lease.lease_key.clone()))
                .condition_expression("leaseCounter = :counter AND checkpoint = :end")
                .expression_attribute_values(
                    ":counter",
                    AttributeValue::N(lease.lease_counter.to_string()),
                )
                .expression_attribute_values(":end", AttributeValue::S("SHARD_END".to_owned()))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(err) if has_code(&err, "ConditionalCheckFailedException") => {
                    kept.push((
                        lease.lease_key.clone(),
                        "changed while cleaning up".to_owned(),
                    ));
                    continue;
                }
                Err(err) => {
                    return Err(explain(&format!("deleting lease {}", lease.lease_key), err))
                }
            }
        }
        deleted.push(lease.lease_key.clone());
    }
    if global.json {
        let kept: Vec<Value> = kept
            .iter()
            .map(|(key, why)| json!({"leaseKey": key, "reason": why}))
            .collect();
        print_json(&json!({"dryRun": dry_run, "deleted": deleted, "kept": kept}));
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        for key in &deleted {
            println!("{verb} {key}: shard gone, processed to SHARD_END");
        }
        for (key, why) in &kept {
            println!("kept {key}: {why}");
        }
        println!(
            "{} lease(s) {verb}, {} kept for review",
            deleted.len(),
            kept.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The live view's inputs.
struct FleetView<'a> {
    clients: &'a Clients,
    global: &'a Global,
    app: &'a str,
    table: &'a str,
    stream: Option<&'a StreamRef>,
    max_records: u64,
}

/// What one frame shows, kept for the next frame's rates.
#[derive(Debug, Default)]
struct FrameState {
    checkpoints: BTreeMap<String, Option<StoredCheckpoint>>,
    at: Option<Instant>,
}

impl FleetView<'_> {
    async fn run(&self, watch: bool, interval: Duration) -> anyhow::Result<ExitCode> {
        table::check_lease_table(&self.clients.dynamodb, self.table).await?;
        let mut observer = Observer::new(Instant::now());
        let mut state = FrameState::default();
        loop {
            let frame = self.frame(&mut observer, &mut state).await?;
            let mut stdout = std::io::stdout().lock();
            if watch && !self.global.json {
                // Home and clear: a plain redraw that works in any terminal and over SSH.
                write!(stdout, "\x1b[H\x1b[2J")?;
            }
            write!(stdout, "{frame}")?;
            stdout.flush()?;
            drop(stdout);
            if !watch {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    }

    async fn frame(
        &self,
        observer: &mut Observer,
        state: &mut FrameState,
    ) -> anyhow::Result<String> {
        let snapshot = table::scan(&self.clients.dynamodb, self.table).await?;
        let now = Instant::now();
        observer.observe(&snapshot, now);
        let elapsed = state.at.map(|at| now - at);
        let shards = known_shards(self.clients, snapshot.leases(), self.stream).await?;
        let mut lags = Vec::new();
        for lease in snapshot.leases() {
            // Reading from the previous frame's checkpoint counts what was processed since.
            let previous = state.checkpoints.get(&lease.lease_key).cloned().flatten();
            let from = previous.filter(|p| {
                p.sequence_number.bytes().all(|b| b.is_ascii_digit())
                    && lease.checkpoint.as_ref().is_some_and(|c| {
                        c.sequence_number.bytes().all(|b| b.is_ascii_digit())
                            && kinesis::compare_sequence(&p.sequence_number, &c.sequence_number)
                                != std::cmp::Ordering::Greater
                    })
            });
            let lag = measure_lag(
                self.clients,
                lease,
                self.stream,
                &shards,
                from.as_ref(),
                Duration::from_secs(300),
                self.max_records,
            )
            .await?;
            lags.push((lag, from.is_some() || state.at.is_some()));
        }
        state.checkpoints = snapshot
            .leases()
            .map(|l| (l.lease_key.clone(), l.checkpoint.clone()))
            .collect();
        state.at = Some(now);

        #[derive(Default)]
        struct Worker {
            leases: usize,
            processed: u64,
            behind: u64,
            metrics: Option<String>,
        }
        let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
        for (lag, _) in &lags {
            let name = lag
                .lease
                .lease_owner
                .clone()
                .unwrap_or_else(|| "(unowned)".into());
            let worker = workers.entry(name).or_default();
            worker.leases += 1;
            if let Some(b) = &lag.backlog {
                worker.processed += b.processed;
                worker.behind += b.waiting;
            }
        }
        for m in snapshot.worker_metrics() {
            workers.entry(m.worker_id.clone()).or_default().metrics =
                Some(table::metrics_summary(m));
        }
        let rate = |processed: u64| match elapsed {
            Some(e) if !e.is_zero() => format!("{:.1}", processed as f64 / e.as_secs_f64()),
            _ => "-".to_owned(),
        };
        if self.global.json {
            let workers: Vec<Value> = workers
                .iter()
                .map(|(name, w)| {
                    json!({
                        "worker": name,
                        "leases": w.leases,
                        "recordsPerSecond": elapsed.filter(|e| !e.is_zero()).map(|e| w.processed as f64 / e.as_secs_f64()),
                        "recordsBehind": w.behind,
                    })
                })
                .collect();
            let moves: Vec<Value> = observer
                .moves()
                .map(|m| json!({"atEpochMillis": m.at_epoch_ms, "leaseKey": m.lease_key, "from": m.from, "to": m.to}))
                .collect();
            return Ok(serde_json::to_string(&json!({
                "app": self.app,
                "leader": snapshot.leader().map(|l| l.owner.clone()),
                "workers": workers,
                "leases": lags.iter().map(|(l, _)| json!({
                    "leaseKey": l.lease.lease_key,
                    "owner": l.lease.lease_owner,
                    "recordsBehind": l.backlog.as_ref().map(|b| b.waiting),
                    "millisBehind": l.backlog.as_ref().map(Backlog::millis_behind),
                    "status": l.status,
                })).collect::<Vec<_>>(),
                "recentMoves": moves,
            }))? + "\n");
        }
        let mut out = format!(
            "kcl fleet {}   table {}   {} leases   leader {}\n\n",
            self.app,
            self.table,
            lags.len(),
            snapshot
                .leader()
                .map(|l| l.owner.clone())
                .unwrap_or_else(|| "none (workers take leases themselves)".into())
        );
        let worker_rows: Vec<Vec<String>> = workers
            .iter()
            .map(|(name, w)| {
                vec![
                    name.clone(),
                    w.leases.to_string(),
                    rate(w.processed),
                    w.behind.to_string(),
                    w.metrics.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&columns(
            &["WORKER", "LEASES", "RECORDS/S", "RECORDS BEHIND", "METRICS"],
            &worker_rows,
        ));
        let lease_rows: Vec<Vec<String>> = lags
            .iter()
            .map(|(l, _)| {
                vec![
                    l.lease.lease_key.clone(),
                    l.lease.lease_owner.clone().unwrap_or_else(|| "-".into()),
                    checkpoint_label(l.lease.checkpoint.as_ref()),
                    l.backlog.as_ref().map_or("-".into(), records_label),
                    l.backlog
                        .as_ref()
                        .map_or("-".into(), |b| human_millis(b.millis_behind())),
                    observer.renewal_age(&l.lease, now).label(),
                    l.status.to_owned(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&columns(
            &[
                "SHARD",
                "OWNER",
                "CHECKPOINT",
                "BEHIND",
                "TIME BEHIND",
                "RENEWED",
                "STATUS",
            ],
            &lease_rows,
        ));
        out.push_str("\nRecent lease moves\n");
        let moves: Vec<_> = observer.moves().collect();
        if moves.is_empty() {
            out.push_str("  none seen yet\n");
        }
        for m in moves {
            out.push_str(&format!(
                "  {} {} {} -> {}\n",
                clock(m.at_epoch_ms),
                m.lease_key,
                m.from.as_deref().unwrap_or("-"),
                m.to.as_deref().unwrap_or("-")
            ));
        }
        Ok(out)
    }
}

/// `HH:MM:SS` (UTC) of an epoch-milliseconds time.
fn clock(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn positions_parse() {
        assert_eq!(
            parse_position(&words("trim-horizon")).unwrap(),
            Position::TrimHorizon
        );
        assert_eq!(parse_position(&words("latest")).unwrap(), Position::Latest);
        assert_eq!(
            parse_position(&words("sequence 4959")).unwrap(),
            Position::Sequence("4959".into())
        );
        assert_eq!(
            parse_position(&words("at-timestamp 2024-05-01T10:00:00Z")).unwrap(),
            Position::AtTimestamp(DateTime::from_secs(1_714_557_600))
        );
        assert!(parse_position(&words("sequence abc")).is_err());
        assert!(parse_position(&words("at-timestamp")).is_err());
        assert!(parse_position(&words("yesterday")).is_err());
    }
}
