//! PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::streams::HashKeyRange;
use crate::kinesis::model::keys::{parse_hash_key, partition_key_hash};
use crate::kinesis::model::{NewRecord, PutOutcome, RecordDistribution, Shard, Status, Stream};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::{check_shard_id, validate_range};
use crate::kinesis::request::{epoch_seconds, errors, stream_name_from_arn, StreamRef};
use crate::kinesis::KinesisStore;
use crate::wire::cbor::Blob;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult, ErrorKind};

/// PutRecords accepts at most this many records.
const MAX_PUT_RECORDS: usize = 500;
/// PutRecords accepts at most this many bytes of data and partition keys.
const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// GetRecords returns at most this many bytes.
const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordInput {
    #[serde(flatten)]
    stream: StreamRef,
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
    encryption_type: String,
}

/// Where a record sits in its request, as validation errors name it: nothing for PutRecord's
/// single record, `records.N.member.` (counted from 1) for a PutRecords entry.
///
/// Kept as the entry's index and spelled out only in an error message: formatting the prefix
/// for every entry, to use it only on failure, was a few per cent of a 500-record PutRecords.
#[derive(Clone, Copy)]
enum Member {
    Single,
    Entry(usize),
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Single => Ok(()),
            Member::Entry(i) => write!(f, "records.{}.member.", i + 1),
        }
    }
}

/// Validates one record and computes the hash key it routes by. `member` names it in errors.
fn new_record(
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<&str>,
    max_data: usize,
    member: Member,
) -> ApiResult<NewRecord> {
    let data = data.ok_or_else(|| validation::null(&format!("{member}data")))?;
    let data = data.into_bytes().map_err(|_| {
        ApiError::serialization(format!("Value for {member}Data is not valid base64"))
    })?;
    if data.len() > max_data {
        return Err(validation::invalid_unshown(
            &format!("{member}data"),
            &format!("Member must have length less than or equal to {max_data}"),
        ));
    }
    let partition_key =
        partition_key.ok_or_else(|| validation::null(&format!("{member}partitionKey")))?;
    let key_chars = partition_key.chars().count();
    if !(1..=256).contains(&key_chars) {
        return Err(validation::invalid(
            partition_key,
            &format!("{member}partitionKey"),
            "Member must have length between 1 and 256",
        ));
    }
    // The record size limit covers the partition key as well as the data.
    if data.len() + partition_key.len() > max_data {
        return Err(validation::invalid_unshown(
            &format!("{member}data"),
            &format!("Member must have length less than or equal to {max_data}"),
        ));
    }
    let hash = match explicit_hash_key {
        Some(text) => parse_hash_key(text).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, \
                 340282366920938463463374607431768211455]. Specified value was {text}"
            ))
        })?,
        None => partition_key_hash(&partition_key),
    };
    Ok(NewRecord {
        partition_key: Arc::from(partition_key),
        data: Bytes::from(data),
        hash,
    })
}

/// What a write needs to know about its stream, read under one lock.
struct WriteTarget {
    stream: Arc<Stream>,
    max_record_bytes: usize,
    /// The stream spreads records itself (`AUTO`) instead of routing by partition key.
    auto_distribution: bool,
    encryption_type: String,
}

/// The stream, if records may be written to it now (ACTIVE or UPDATING).
fn write_target(store: &KinesisStore, stream: &StreamRef) -> ApiResult<WriteTarget> {
    let stream = stream.resolve(store)?;
    let state = stream.lock();
    if !matches!(
        state.status(store.now_ms()),
        Status::Active | Status::Updating
    ) {
        drop(state);
        return Err(store.stream_not_found(&stream.name).into());
    }
    let target = WriteTarget {
        max_record_bytes: state.settings.max_record_size_kib as usize * 1024,
        auto_distribution: state.settings.record_distribution == RecordDistribution::Auto,
        encryption_type: state.settings.encryption_type.wire_name().to_owned(),
        stream: Arc::clone(&stream),
    };
    drop(state);
    Ok(target)
}

/// A hash key that spreads records evenly: MD5 of a process-wide counter. Used for streams in
/// `AUTO` distribution, where the partition key does not choose the shard.
fn spread_hash() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    partition_key_hash(&NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

pub(crate) async fn put_record(
    store: &KinesisStore,
    input: PutRecordInput,
) -> ApiResult<PutRecordOutput> {
    let target = write_target(store, &input.stream)?;
    let stream = &target.stream;
    if let Some(ordering) = &input.sequence_number_for_ordering {
        if !ordering.bytes().all(|b| b.is_ascii_digit()) || ordering.is_empty() {
            return Err(ApiError::invalid_argument(format!(
                "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {} under \
                 account {} is invalid.",
                stream.name, store.config.account_id
            )));
        }
        // Every new record's counter exceeds every earlier one, so ordering always holds.
    }
    let mut record = new_record(
        input.data,
        input.partition_key,
        input.explicit_hash_key.as_deref(),
        target.max_record_bytes,
        Member::Single,
    )?;
    if input.explicit_hash_key.is_none() && target.auto_distribution {
        record.hash = spread_hash();
    }
    let encryption_type = target.encryption_type;
    match store.append(stream, vec![record]).await?.remove(0) {
        PutOutcome::Stored {
            shard_id,
            sequence_number,
        } => Ok(PutRecordOutput {
            shard_id,
            sequence_number,
            encryption_type,
        }),
        // PutRecord answers every rejection as the throughput error its single record met.
        PutOutcome::Rejected(rejected) => Err(ApiError::new(
            ErrorKind::ProvisionedThroughputExceeded,
            errors::rejection(rejected).message,
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsEntry {
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsInput {
    #[serde(flatten)]
    stream: StreamRef,
    records: Vec<PutRecordsEntry>,
}

// Only the benchmarks build requests and answers outside a request.
#[cfg(feature = "bench-internals")]
impl PutRecordsInput {
    /// How many entries the request holds.
    pub(crate) fn entry_count(&self) -> usize {
        self.records.len()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsOutput {
    failed_record_count: usize,
    records: Vec<PutRecordsResultEntry>,
    encryption_type: String,
}

#[cfg(feature = "bench-internals")]
impl PutRecordsOutput {
    /// The answer when every entry was stored: `(sequence number, shard id)` per entry.
    pub(crate) fn all_stored(entries: Vec<(String, String)>) -> PutRecordsOutput {
        PutRecordsOutput {
            failed_record_count: 0,
            records: entries
                .into_iter()
                .map(|(sequence_number, shard_id)| PutRecordsResultEntry {
                    sequence_number: Some(sequence_number),
                    shard_id: Some(shard_id),
                    error_code: None,
                    error_message: None,
                })
                .collect(),
            encryption_type: "NONE".to_owned(),
        }
    }
}

pub(crate) async fn put_records(
    store: &KinesisStore,
    input: PutRecordsInput,
) -> ApiResult<PutRecordsOutput> {
    if input.records.is_empty() || input.records.len() > MAX_PUT_RECORDS {
        return Err(validation::invalid_unshown(
            "records",
            &format!(
                "Member must have length {} {MAX_PUT_RECORDS}",
                if input.records.is_empty() {
                    "greater than or equal to 1, and less than or equal to"
                } else {
                    "less than or equal to"
                }
            ),
        ));
    }
    let target = write_target(store, &input.stream)?;
    let max_data = target.max_record_bytes;
    let auto = target.auto_distribution;
    let mut total = 0;
    let mut records = Vec::with_capacity(input.records.len());
    for (i, entry) in input.records.into_iter().enumerate() {
        let explicit = entry.explicit_hash_key.is_some();
        let mut record = new_record(
            entry.data,
            entry.partition_key,
            entry.explicit_hash_key.as_deref(),
            max_data,
            Member::Entry(i),
        )?;
        if auto && !explicit {
            record.hash = spread_hash();
        }
        total += record.data.len() + record.partition_key.len();
        records.push(record);
    }
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "Records size exceeds 5 MB limit: {total} bytes of data and partition keys"
        )));
    }
    let encryption_type = target.encryption_type;
    let outcomes = store.append(&target.stream, records).await?;
    let mut failed = 0;
    let records = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            PutOutcome::Stored {
                shard_id,
                sequence_number,
            } => PutRecordsResultEntry {
                sequence_number: Some(sequence_number),
                shard_id: Some(shard_id),
                error_code: None,
                error_message: None,
            },
            PutOutcome::Rejected(rejected) => {
                failed += 1;
                let error = errors::rejection(rejected);
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(error.kind.wire_name()),
                    error_message: Some(error.message),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records,
        encryption_type,
    })
}

/// Where a shard iterator points: the first record with a counter at or above `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iterator {
    pub(crate) stream: String,
    pub(crate) epoch: u64,
    pub(crate) shard_index: u32,
    pub(crate) position: u64,
    pub(crate) issued_ms: i64,
}

impl Iterator {
    /// Encodes the iterator as an opaque, checksummed string.
    pub(crate) fn encode(&self) -> String {
        let body = format!(
            "1:{}:{}:{}:{}:{}",
            self.stream, self.epoch, self.shard_index, self.position, self.issued_ms
        );
        let crc = crc32fast::hash(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(format!("{body}:{crc}"))
    }

    /// Decodes an iterator made by [`Iterator::encode`]; `None` for anything else.
    pub(crate) fn decode(text: &str) -> Option<Iterator> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (body, crc) = raw.rsplit_once(':')?;
        if crc32fast::hash(body.as_bytes()).to_string() != crc {
            return None;
        }
        let mut parts = body.split(':');
        if parts.next()? != "1" {
            return None;
        }
        let iterator = Iterator {
            stream: parts.next()?.to_owned(),
            epoch: parts.next()?.parse().ok()?,
            shard_index: parts.next()?.parse().ok()?,
            position: parts.next()?.parse().ok()?,
            issued_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(iterator)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetShardIteratorInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_id: String,
    shard_iterator_type: String,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetShardIteratorOutput {
    shard_iterator: String,
}

/// The counter position a starting point resolves to on `shard`: shared by GetShardIterator and
/// SubscribeToShard.
///
/// # Errors
/// `InvalidArgumentException` for a missing or foreign sequence number or timestamp.
pub(crate) fn iterator_position(
    stream: &Stream,
    shard: &Shard,
    kind: &str,
    sequence_number: Option<&str>,
    timestamp: Option<f64>,
) -> ApiResult<u64> {
    let log = shard.lock();
    let tip = log
        .records
        .back()
        .map_or(shard.starting_counter, |r| r.counter + 1);
    match kind {
        "TRIM_HORIZON" => Ok(0),
        "LATEST" => Ok(tip),
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
            let text = sequence_number.ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "StartingSequenceNumber is required for ShardIteratorType {kind}"
                ))
            })?;
            drop(log);
            let counter = stream.parse_sequence(text, shard)?;
            Ok(if kind == "AT_SEQUENCE_NUMBER" {
                counter
            } else {
                counter + 1
            })
        }
        "AT_TIMESTAMP" => {
            let seconds = timestamp.ok_or_else(|| {
                ApiError::invalid_argument(
                    "Timestamp is required for ShardIteratorType AT_TIMESTAMP",
                )
            })?;
            let at_ms = (seconds * 1000.0) as i64;
            let index = log.records.partition_point(|r| r.arrival_ms < at_ms);
            Ok(log.records.get(index).map_or(tip, |r| r.counter))
        }
        other => Err(validation::invalid(other, "shardIteratorType", "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]")),
    }
}

pub(crate) async fn get_shard_iterator(
    store: &KinesisStore,
    input: GetShardIteratorInput,
) -> ApiResult<GetShardIteratorOutput> {
    check_shard_id(&input.shard_id, "shardId")?;
    let stream = input.stream.resolve(store)?;
    let shard = stream
        .lock()
        .shard(&input.shard_id, store.now_ms())
        .cloned()
        .ok_or_else(|| store.shard_not_found(&stream.name, &input.shard_id))?;
    let position = iterator_position(
        &stream,
        &shard,
        &input.shard_iterator_type,
        input.starting_sequence_number.as_deref(),
        input.timestamp,
    )?;
    let iterator = Iterator {
        stream: stream.name.clone(),
        epoch: stream.epoch,
        shard_index: shard.index,
        position,
        issued_ms: store.now_ms(),
    };
    Ok(GetShardIteratorOutput {
        shard_iterator: iterator.encode(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetRecordsInput {
    shard_iterator: String,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RecordOutput {
    pub(crate) sequence_number: String,
    pub(crate) approximate_arrival_timestamp: f64,
    pub(crate) data: String,
    pub(crate) partition_key: Arc<str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChildShard {
    pub(crate) shard_id: String,
    pub(crate) parent_shards: Vec<String>,
    pub(crate) hash_key_range: HashKeyRange,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetRecordsOutput {
    records: Vec<RecordOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_shard_iterator: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<ChildShard>>,
}

/// A batch read from a shard: what GetRecords and SubscribeToShard both send.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) records: Vec<RecordOutput>,
    /// Position after the batch.
    pub(crate) next_position: u64,
    pub(crate) millis_behind_latest: i64,
    /// Whether visible records remain after the batch.
    pub(crate) more_available: bool,
    /// Set when the batch reaches the end of a closed shard.
    pub(crate) child_shards: Option<Vec<ChildShard>>,
}

/// Reads up to `limit` visible records of `shard` from `position`; `now` on the store's clock.
pub(crate) fn read_batch(
    stream: &Stream,
    shard: &Shard,
    position: u64,
    limit: usize,
    max_bytes: usize,
    now: i64,
) -> Batch {
    let log = shard.lock();
    let start = log.position_of(position);
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut next_position = position;
    for record in log.records.range(start..) {
        if record.counter > log.visible_counter || records.len() == limit {
            break;
        }
        bytes += record.data.len() + record.partition_key.len();
        if bytes > max_bytes && !records.is_empty() {
            break;
        }
        records.push(RecordOutput {
            sequence_number: stream.sequence_number(record.counter, shard.index),
            approximate_arrival_timestamp: epoch_seconds(record.arrival_ms),
            data: base64::engine::general_purpose::STANDARD.encode(&record.data),
            partition_key: Arc::clone(&record.partition_key),
        });
        next_position = record.counter + 1;
    }
    let next_unread = log.records.range(start + records.len()..).next();
    let more_available = next_unread.is_some_and(|r| r.counter <= log.visible_counter);
    let millis_behind_latest = match next_unread {
        Some(r) if more_available => (now - r.arrival_ms).max(0),
        _ => 0,
    };
    let at_end = log.ending_counter.is_some() && next_unread.is_none() && log.fully_visible();
    drop(log);
    let child_shards = at_end.then(|| child_shards(stream, shard));
    Batch {
        records,
        next_position,
        millis_behind_latest,
        more_available,
        child_shards,
    }
}

/// The shards whose parent or adjacent parent is `shard`.
pub(crate) fn child_shards(stream: &Stream, shard: &Shard) -> Vec<ChildShard> {
    stream
        .lock()
        .shards
        .iter()
        .filter(|s| {
            s.parent.as_deref() == Some(shard.id.as_str())
                || s.adjacent_parent.as_deref() == Some(shard.id.as_str())
        })
        .map(|s| ChildShard {
            shard_id: s.id.clone(),
            parent_shards: s.parent.iter().chain(&s.adjacent_parent).cloned().collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: s.start_hash.to_string(),
                ending_hash_key: s.end_hash.to_string(),
            },
        })
        .collect()
}

pub(crate) async fn get_records(
    store: &KinesisStore,
    input: GetRecordsInput,
) -> ApiResult<GetRecordsOutput> {
    validate_range(input.limit, 1, 10_000, "limit")?;
    if input.shard_iterator.is_empty() || input.shard_iterator.len() > 512 {
        return Err(validation::invalid_unshown(
            "shardIterator",
            "Member must have length between 1 and 512",
        ));
    }
    let iterator = Iterator::decode(&input.shard_iterator)
        .ok_or_else(|| ApiError::invalid_argument("Invalid ShardIterator."))?;
    if let Some(arn) = &input.stream_arn {
        if stream_name_from_arn(store, arn)? != iterator.stream {
            return Err(ApiError::invalid_argument("Invalid ShardIterator."));
        }
    }
    let now = store.now_ms();
    let ttl = store.config.iterator_ttl.as_millis() as i64;
    if now - iterator.issued_ms > ttl {
        return Err(ApiError::new(
            ErrorKind::ExpiredIterator,
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} \
                 which is further in the future than the tolerated delay of {ttl} milliseconds.",
                epoch_seconds(iterator.issued_ms),
                epoch_seconds(now)
            ),
        ));
    }
    let stream = store.stream(&iterator.stream)?;
    if stream.epoch != iterator.epoch {
        return Err(store.stream_not_found(&iterator.stream).into());
    }
    let shard = stream
        .lock()
        .shards
        .get(iterator.shard_index as usize)
        .cloned()
        .ok_or_else(|| ApiError::invalid_argument("Invalid ShardIterator."))?;
    if store.config.enforce_throughput {
        let mut log = shard.lock();
        log.window.roll(now);
        if log.window.reads >= 5 || log.window.bytes_out >= 2 * 1024 * 1024 {
            return Err(ApiError::new(
                ErrorKind::ProvisionedThroughputExceeded,
                format!(
                    "Rate exceeded for Shard - {} for account {} for stream {}.",
                    shard.id, store.config.account_id, stream.name
                ),
            ));
        }
        log.window.reads += 1;
    }
    let limit = input.limit.unwrap_or(10_000) as usize;
    let batch = read_batch(
        &stream,
        &shard,
        iterator.position,
        limit,
        MAX_GET_RECORDS_BYTES,
        now,
    );
    if store.config.enforce_throughput {
        let bytes: usize = batch.records.iter().map(|r| r.data.len() * 3 / 4).sum();
        shard.lock().window.bytes_out += bytes as u64;
    }
    let next_shard_iterator = batch.child_shards.is_none().then(|| {
        Iterator {
            position: batch.next_position,
            issued_ms: now,
            ..iterator
        }
        .encode()
    });
    Ok(GetRecordsOutput {
        records: batch.records,
        next_shard_iterator,
        millis_behind_latest: batch.millis_behind_latest,
        child_shards: batch.child_shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_reject_tampering() {
        let it = Iterator {
            stream: "orders".into(),
            epoch: 1_700_000_000_000,
            shard_index: 3,
            position: 42,
            issued_ms: 1_700_000_000_123,
        };
        let text = it.encode();
        assert_eq!(Iterator::decode(&text), Some(it.clone()));
        let forged = base64::engine::general_purpose::STANDARD
            .encode("1:orders:1700000000000:3:41:1700000000123:0");
        assert_eq!(Iterator::decode(&forged), None);
        assert_eq!(Iterator::decode("not an iterator"), None);
    }
}
