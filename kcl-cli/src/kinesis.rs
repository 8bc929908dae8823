//! What the stream says about a lease: the shards that exist, how many records wait after a
//! checkpoint and how old they are, and which sequence number a timestamp falls after.
//!
//! Kinesis has no "count records between two positions" call, so lag is measured by reading the
//! shard from the checkpoint with GetRecords, up to a cap. These reads share the shard's 5
//! reads/s with the fleet's own consumers, which is why the cap exists and defaults low.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::bail;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use kcl_lease::{Lease, MultiStreamKey, StoredCheckpoint};

use crate::aws::{explain, has_code};

/// A stream, by name or ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamRef {
    /// Its name, when known.
    pub name: Option<String>,
    /// Its ARN, when given.
    pub arn: Option<String>,
}

impl StreamRef {
    /// `--stream`: a name, or an ARN when it starts with `arn:`.
    pub fn parse(text: &str) -> StreamRef {
        if text.starts_with("arn:") {
            StreamRef {
                name: None,
                arn: Some(text.to_owned()),
            }
        } else {
            StreamRef {
                name: Some(text.to_owned()),
                arn: None,
            }
        }
    }

    /// The stream of `lease`: the one in a multi-stream key, else `default` (`--stream`).
    pub fn of_lease(lease: &Lease, default: Option<&StreamRef>) -> anyhow::Result<StreamRef> {
        if let Some(key) = MultiStreamKey::parse(&lease.lease_key) {
            return Ok(StreamRef {
                name: Some(key.stream_name.to_owned()),
                arn: None,
            });
        }
        match default {
            Some(stream) => Ok(stream.clone()),
            None => bail!(
                "lease {} names no stream (single-stream applications keep the stream in their \
                 configuration, not in the table): pass --stream",
                lease.lease_key
            ),
        }
    }

    fn label(&self) -> &str {
        self.name.as_deref().or(self.arn.as_deref()).unwrap_or("?")
    }
}

/// Orders decimal sequence numbers (no leading zeros) numerically.
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The ids of the shards the stream still has (within its retention period).
pub async fn shard_ids(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
) -> anyhow::Result<BTreeSet<String>> {
    let mut shards = BTreeSet::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match &next_token {
            Some(token) => kinesis.list_shards().next_token(token),
            None => kinesis
                .list_shards()
                .set_stream_name(stream.name.clone())
                .set_stream_arn(stream.arn.clone()),
        };
        let out = request.send().await.map_err(|err| {
            if has_code(&err, "ResourceNotFoundException") {
                anyhow::anyhow!("stream {} does not exist", stream.label())
            } else {
                explain(&format!("listing the shards of {}", stream.label()), err)
            }
        })?;
        shards.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        match out.next_token() {
            Some(token) => next_token = Some(token.to_owned()),
            None => return Ok(shards),
        }
    }
}

/// Records after a position, as far as the reading went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Records after the start up to and including the checkpoint (see [`read_after`]).
    pub processed: u64,
    /// Records after the checkpoint: waiting to be processed.
    pub waiting: u64,
    /// The reading stopped at the cap; the counts are lower bounds.
    pub capped: bool,
    /// Arrival of the checkpointed record, epoch milliseconds.
    pub checkpoint_ms: Option<i64>,
    /// Arrival of the first waiting record, epoch milliseconds.
    pub oldest_waiting_ms: Option<i64>,
    /// Arrival of the newest record in the shard, epoch milliseconds (estimated from
    /// MillisBehindLatest when capped).
    pub newest_ms: Option<i64>,
    /// The shard is closed and every record was read.
    pub closed: bool,
}

impl Backlog {
    /// How far the checkpoint is behind the newest record in time: arrival of the newest record
    /// minus arrival of the checkpointed one (of the oldest waiting one when the checkpoint is
    /// not a record); zero when nothing waits.
    pub fn millis_behind(&self) -> i64 {
        if self.waiting == 0 {
            return 0;
        }
        match (
            self.newest_ms,
            self.checkpoint_ms.or(self.oldest_waiting_ms),
        ) {
            (Some(newest), Some(from)) => (newest - from).max(0),
            _ => 0,
        }
    }
}

/// Where reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The shard's oldest record.
    TrimHorizon,
    /// At this sequence number; that record itself was processed before and is not counted.
    At(String),
}

/// The position of `checkpoint`, or `None` when the checkpoint is not a position in the
/// shard (`LATEST`, `AT_TIMESTAMP`: the worker's configuration holds the rest; `SHARD_END`).
pub fn start_of(checkpoint: Option<&StoredCheckpoint>) -> Option<Start> {
    let checkpoint = checkpoint?;
    match checkpoint.sequence_number.as_str() {
        "TRIM_HORIZON" => Some(Start::TrimHorizon),
        "LATEST" | "AT_TIMESTAMP" | "SHARD_END" => None,
        sequence => Some(Start::At(sequence.to_owned())),
    }
}

/// Reads `shard` from `start` to its tip (or `max_records`): records up to and including
/// `checkpoint` count as processed (reading from an earlier checkpoint measures progress), the
/// rest as waiting.
pub async fn read_after(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    shard: &str,
    start: &Start,
    checkpoint: Option<&str>,
    max_records: u64,
) -> anyhow::Result<Backlog> {
    let request = kinesis
        .get_shard_iterator()
        .set_stream_name(stream.name.clone())
        .set_stream_arn(stream.arn.clone())
        .shard_id(shard);
    let start_sequence = match start {
        Start::TrimHorizon => None,
        Start::At(sequence) => Some(sequence.as_str()),
    };
    let request = match start_sequence {
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Some(sequence) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(sequence),
    };
    let iterator = request
        .send()
        .await
        .map_err(|err| explain(&format!("reading shard {shard} of {}", stream.label()), err))?
        .shard_iterator;
    let mut backlog = Backlog::default();
    let end = read_from(kinesis, shard, iterator, max_records, |record| {
        let sequence = record.sequence_number();
        let arrival = record.approximate_arrival_timestamp().map(millis);
        if checkpoint == Some(sequence) {
            backlog.checkpoint_ms = arrival;
        }
        if start_sequence == Some(sequence) {
            return true;
        }
        match checkpoint {
            Some(through) if compare_sequence(sequence, through) != Ordering::Greater => {
                backlog.processed += 1
            }
            _ => {
                if backlog.waiting == 0 {
                    backlog.oldest_waiting_ms = arrival;
                }
                backlog.waiting += 1;
            }
        }
        true
    })
    .await?;
    backlog.capped = end.capped;
    backlog.newest_ms = end.newest_ms;
    backlog.closed = end.closed;
    Ok(backlog)
}

struct ReadEnd {
    capped: bool,
    closed: bool,
    newest_ms: Option<i64>,
}

/// Calls `each` for every record from `iterator` to the tip, at most `max_records`, until it
/// returns `false`.
async fn read_from(
    kinesis: &aws_sdk_kinesis::Client,
    shard: &str,
    mut iterator: Option<String>,
    max_records: u64,
    mut each: impl FnMut(&aws_sdk_kinesis::types::Record) -> bool,
) -> anyhow::Result<ReadEnd> {
    let mut seen = 0u64;
    let mut newest_ms = None;
    let mut throttled = 0;
    // A shard can hold empty stretches that take several calls to cross; bound the calls so a
    // measurement always ends.
    for _ in 0..100 {
        let Some(current) = iterator.take() else {
            return Ok(ReadEnd {
                capped: false,
                closed: true,
                newest_ms,
            });
        };
        let limit = (max_records - seen).clamp(1, 10_000) as i32;
        let out = match kinesis
            .get_records()
            .shard_iterator(&current)
            .limit(limit)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err)
                if has_code(&err, "ProvisionedThroughputExceededException") && throttled < 5 =>
            {
                throttled += 1;
                tokio::time::sleep(Duration::from_millis(250 * throttled)).await;
                iterator = Some(current);
                continue;
            }
            Err(err) => return Err(explain(&format!("reading shard {shard}"), err)),
        };
        for record in out.records() {
            newest_ms = record
                .approximate_arrival_timestamp()
                .map(millis)
                .or(newest_ms);
            if !each(record) {
                return Ok(ReadEnd {
                    capped: false,
                    closed: false,
                    newest_ms,
                });
            }
        }
        seen += out.records().len() as u64;
        let behind = out.millis_behind_latest().unwrap_or(0);
        iterator = out.next_shard_iterator().map(str::to_owned);
        if seen >= max_records && behind > 0 {
            return Ok(ReadEnd {
                capped: true,
                closed: false,
                newest_ms: newest_ms.map(|n| n + behind),
            });
        }
        if behind == 0 && iterator.is_some() {
            return Ok(ReadEnd {
                capped: false,
                closed: false,
                newest_ms,
            });
        }
    }
    Ok(ReadEnd {
        capped: true,
        closed: false,
        newest_ms,
    })
}

/// Epoch milliseconds of an SDK timestamp.
pub fn millis(at: &DateTime) -> i64 {
    at.to_millis().unwrap_or(0)
}

/// A timestamp as a checkpoint (see [`checkpoint_before`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The checkpoint.
    pub checkpoint: StoredCheckpoint,
    /// Whether any record arrived at or after the timestamp.
    pub records_since: bool,
}

/// The checkpoint from which a worker processes exactly the records that arrived at or after
/// `at`: the sequence number of the record just before the first such record, `TRIM_HORIZON`
/// when that record is the shard's first, or the newest record when none arrived since.
///
/// A checkpoint cannot say "at a timestamp" (the Java KCL's `AT_TIMESTAMP` sentinel takes the
/// time from the worker's configuration), so the timestamp is turned into a sequence number.
/// Kinesis cannot read backwards: the record before is found by reading forward from ever
/// earlier timestamps.
pub async fn checkpoint_before(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    shard: &str,
    at: DateTime,
) -> anyhow::Result<Since> {
    let first_at = first_record_at(kinesis, stream, shard, at).await?;
    let Some(first_at) = first_at else {
        // Nothing arrived since `at`: processed through the newest record, if any.
        let mut newest = None;
        let iterator = iterator_at(kinesis, stream, shard, None).await?;
        read_from(kinesis, shard, iterator, u64::MAX, |r| {
            newest = Some(r.sequence_number().to_owned());
            true
        })
        .await?;
        return Ok(Since {
            checkpoint: StoredCheckpoint::new(newest.unwrap_or_else(|| "TRIM_HORIZON".to_owned())),
            records_since: false,
        });
    };
    let mut window = Duration::from_secs(10);
    let at_secs = at.secs();
    loop {
        let from = at_secs.saturating_sub(window.as_secs() as i64);
        let earlier = if window > Duration::from_secs(400 * 86_400) {
            None
        } else {
            Some(DateTime::from_secs(from))
        };
        let iterator = iterator_at(kinesis, stream, shard, earlier).await?;
        let mut before = None;
        read_from(kinesis, shard, iterator, u64::MAX, |r| {
            let earlier = compare_sequence(r.sequence_number(), &first_at) == Ordering::Less;
            if earlier {
                before = Some(r.sequence_number().to_owned());
            }
            earlier
        })
        .await?;
        if let Some(before) = before {
            return Ok(Since {
                checkpoint: StoredCheckpoint::new(before),
                records_since: true,
            });
        }
        if earlier.is_none() {
            return Ok(Since {
                checkpoint: StoredCheckpoint::new("TRIM_HORIZON"),
                records_since: true,
            });
        }
        window *= 10;
    }
}

async fn iterator_at(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    shard: &str,
    at: Option<DateTime>,
) -> anyhow::Result<Option<String>> {
    let request = kinesis
        .get_shard_iterator()
        .set_stream_name(stream.name.clone())
        .set_stream_arn(stream.arn.clone())
        .shard_id(shard);
    let request = match at {
        Some(at) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(at),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    Ok(request
        .send()
        .await
        .map_err(|err| explain(&format!("reading shard {shard} of {}", stream.label()), err))?
        .shard_iterator)
}

/// The sequence number of the first record that arrived at or after `at`.
async fn first_record_at(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    shard: &str,
    at: DateTime,
) -> anyhow::Result<Option<String>> {
    let iterator = iterator_at(kinesis, stream, shard, Some(at)).await?;
    let mut first = None;
    read_from(kinesis, shard, iterator, 1, |r| {
        first.get_or_insert_with(|| r.sequence_number().to_owned());
        false
    })
    .await?;
    Ok(first)
}
