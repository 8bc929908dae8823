//! Entry points into the emulator's hot paths for its micro-benchmarks (`benches/`). Not a
//! stable API: hidden from the documentation and free to change with the internals.

use std::sync::Arc;

use bytes::Bytes;

use crate::durable::segment as log;
use crate::kinesis::api::records::{PutRecordsInput, PutRecordsOutput};
use crate::kinesis::model::keys::SequenceParts;
use crate::kinesis::model::Record;
use crate::wire::codec::{self, Format};

fn format(cbor: bool) -> Format {
    if cbor {
        Format::Cbor
    } else {
        Format::Json
    }
}

/// Decodes a PutRecords request body the way the server does; returns its entry count.
///
/// # Panics
/// When the body is not a valid PutRecords request.
pub fn decode_put_records(body: &[u8], cbor: bool) -> usize {
    codec::decode::<PutRecordsInput>(format(cbor), body)
        .expect("a valid PutRecords body")
        .entry_count()
}

/// A successful PutRecords response for `entries` records, ready to encode.
#[derive(Debug)]
pub struct PutRecordsResponse(PutRecordsOutput);

/// Builds the response the server sends for `entries` stored records.
pub fn put_records_response(entries: usize) -> PutRecordsResponse {
    PutRecordsResponse(PutRecordsOutput::all_stored(
        (0..entries)
            .map(|i| {
                (
                    format_sequence_number(i as u64, 0, 1_700_000_000_000),
                    crate::kinesis::model::keys::shard_id(0),
                )
            })
            .collect(),
    ))
}

/// Encodes a PutRecords response as the server does.
pub fn encode_put_records_response(response: &PutRecordsResponse, cbor: bool) -> Vec<u8> {
    codec::encode(format(cbor), &response.0)
}

/// The 56-digit sequence number of a record.
pub fn format_sequence_number(counter: u64, shard_index: u32, stream_epoch: u64) -> String {
    SequenceParts {
        counter,
        shard_index,
        stream_epoch,
    }
    .format()
}

/// The record counter a sequence number encodes.
pub fn parse_sequence_number(text: &str) -> Option<u64> {
    SequenceParts::parse(text).map(|parts| parts.counter)
}

/// The 128-bit hash key of a partition key (MD5, as Kinesis routes records).
pub fn partition_key_hash(partition_key: &str) -> u128 {
    crate::kinesis::model::keys::partition_key_hash(partition_key)
}

/// Appends `count` records of `size` bytes as segment-log frames, as one group commit does.
pub fn encode_log_frames(count: usize, size: usize) -> Vec<u8> {
    let data = Bytes::from(vec![b'x'; size]);
    let key: Arc<str> = Arc::from("partition-key");
    let mut buf = Vec::with_capacity(count * (size + 64));
    for counter in 0..count as u64 {
        let record = Record {
            counter,
            arrival_ms: 1_700_000_000_000,
            partition_key: Arc::clone(&key),
            data: data.clone(),
        };
        log::encode_frame(&mut buf, &record);
    }
    buf
}

/// Reads frames back (recovery and range reads of the log); returns how many were valid.
pub fn decode_log_frames(bytes: &[u8]) -> usize {
    log::decode_frames(bytes).0.len()
}
