//! KPL de-aggregation.
//!
//! An aggregated record's data is the magic `F3 89 9A C2`, a protobuf `AggregatedRecord`
//! (`partition_key_table = 1`, `explicit_hash_key_table = 2`, `records = 3`, each `Record` with
//! `partition_key_index = 1`, `explicit_hash_key_index = 2`, `data = 3`), and the MD5 of the
//! protobuf bytes. Anything that does not check out is delivered as the plain record it is.
//! The format is small enough that a hand-written decoder beats a protobuf toolchain in the
//! build.

use bytes::Bytes;
use md5::{Digest, Md5};

use crate::record::KinesisClientRecord;

/// The magic prefix of a KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const MD5_LEN: usize = 16;

/// A sub-record as decoded, before it becomes a [`KinesisClientRecord`].
#[derive(Debug)]
struct SubRecord {
    partition_key_index: u64,
    explicit_hash_key_index: Option<u64>,
    data: Bytes,
}

/// Reads one varint; `None` at malformed input.
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Walks the fields of a protobuf message, calling `field(number, wire value)`.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn fields<'a>(buf: &'a [u8], mut field: impl FnMut(u64, Value<'a>) -> Option<()>) -> Option<()> {
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(buf, &mut at)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|end| *end <= buf.len())?;
                let bytes = &buf[at..end];
                at = end;
                Value::Bytes(bytes)
            }
            1 => {
                at = at.checked_add(8).filter(|end| *end <= buf.len())?;
                continue;
            }
            5 => {
                at = at.checked_add(4).filter(|end| *end <= buf.len())?;
                continue;
            }
            _ => return None,
        };
        field(key >> 3, value)?;
    }
    Some(())
}

fn decode(protobuf: &[u8], whole: &Bytes) -> Option<(Vec<String>, Vec<String>, Vec<SubRecord>)> {
    let mut keys = Vec::new();
    let mut hash_keys = Vec::new();
    let mut records = Vec::new();
    fields(protobuf, |number, value| {
        match (number, value) {
            (1, Value::Bytes(b)) => keys.push(String::from_utf8(b.to_vec()).ok()?),
            (2, Value::Bytes(b)) => hash_keys.push(String::from_utf8(b.to_vec()).ok()?),
            (3, Value::Bytes(b)) => {
                let mut record = SubRecord {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: Bytes::new(),
                };
                fields(b, |number, value| {
                    match (number, value) {
                        (1, Value::Varint(v)) => record.partition_key_index = v,
                        (2, Value::Varint(v)) => record.explicit_hash_key_index = Some(v),
                        // Share the buffer of the whole record instead of copying the payload.
                        (3, Value::Bytes(d)) => record.data = whole.slice_ref(d),
                        _ => {}
                    }
                    Some(())
                })?;
                records.push(record);
            }
            _ => {}
        }
        Some(())
    })?;
    Some((keys, hash_keys, records))
}

/// Expands `record` into its sub-records if it is a valid KPL aggregate, keeping only those
/// whose hash key lies in `hash_range` (after a reshard, an aggregate can hold sub-records
/// that belong to the sibling shard). Anything else comes back unchanged.
pub fn deaggregate(
    record: KinesisClientRecord,
    hash_range: Option<(u128, u128)>,
) -> Vec<KinesisClientRecord> {
    let data = &record.data;
    if data.len() < KPL_MAGIC.len() + MD5_LEN || data[..4] != KPL_MAGIC {
        return vec![record];
    }
    let protobuf = &data[4..data.len() - MD5_LEN];
    if Md5::digest(protobuf)[..] != data[data.len() - MD5_LEN..] {
        return vec![record];
    }
    let Some((keys, hash_keys, subs)) = decode(protobuf, data) else {
        return vec![record];
    };
    let mut out = Vec::with_capacity(subs.len());
    for (index, sub) in subs.into_iter().enumerate() {
        let Some(partition_key) = usize::try_from(sub.partition_key_index)
            .ok()
            .and_then(|i| keys.get(i))
        else {
            return vec![record];
        };
        let explicit_hash_key = sub
            .explicit_hash_key_index
            .and_then(|i| hash_keys.get(usize::try_from(i).ok()?))
            .cloned();
        if let Some((start, end)) = hash_range {
            let hash = match &explicit_hash_key {
                Some(text) => text.parse::<u128>().ok(),
                None => Some(u128::from_be_bytes(
                    Md5::digest(partition_key.as_bytes()).into(),
                )),
            };
            if hash.is_some_and(|h| h < start || h > end) {
                continue;
            }
        }
        out.push(KinesisClientRecord {
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: index as u64,
            partition_key: partition_key.clone(),
            explicit_hash_key,
            data: sub.data,
            approximate_arrival_timestamp_ms: record.approximate_arrival_timestamp_ms,
            aggregated: true,
        });
    }
    out
}

/// Builds a KPL aggregated record from `(partition key, explicit hash key, data)` sub-records.
/// The KCL only reads aggregates; this is for producers and tests.
pub fn aggregate(records: &[(String, Option<String>, Vec<u8>)]) -> Vec<u8> {
    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        put_varint(out, (field << 3) | 2);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    for (key, hash, _) in records {
        if !keys.contains(&key.as_str()) {
            keys.push(key);
        }
        if let Some(hash) = hash {
            if !hash_keys.contains(&hash.as_str()) {
                hash_keys.push(hash);
            }
        }
    }
    let mut protobuf = Vec::new();
    for key in &keys {
        put_bytes(&mut protobuf, 1, key.as_bytes());
    }
    for hash in &hash_keys {
        put_bytes(&mut protobuf, 2, hash.as_bytes());
    }
    for (key, hash, data) in records {
        let mut sub = Vec::new();
        put_varint(&mut sub, 1 << 3);
        put_varint(
            &mut sub,
            keys.iter().position(|k| k == key).unwrap_or(0) as u64,
        );
        if let Some(hash) = hash {
            put_varint(&mut sub, 2 << 3);
            put_varint(
                &mut sub,
                hash_keys.iter().position(|h| h == hash).unwrap_or(0) as u64,
            );
        }
        put_bytes(&mut sub, 3, data);
        put_bytes(&mut protobuf, 3, &sub);
    }
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(&protobuf);
    out.extend_from_slice(&Md5::digest(&protobuf));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(data: Vec<u8>) -> KinesisClientRecord {
        KinesisClientRecord {
            sequence_number: "49".into(),
            sub_sequence_number: 0,
            partition_key: "outer".into(),
            explicit_hash_key: None,
            data: Bytes::from(data),
            approximate_arrival_timestamp_ms: Some(1),
            aggregated: false,
        }
    }

    #[test]
    fn aggregates_round_trip_with_sub_sequence_numbers() {
        let subs = vec![
            ("a".to_owned(), None, b"one".to_vec()),
            ("b".to_owned(), Some("5".to_owned()), b"two".to_vec()),
            ("a".to_owned(), None, b"three".to_vec()),
        ];
        let records = deaggregate(plain(aggregate(&subs)), None);
        assert_eq!(records.len(), 3);
        for (i, (record, (key, hash, data))) in records.iter().zip(&subs).enumerate() {
            assert_eq!(record.sub_sequence_number, i as u64);
            assert_eq!(&record.partition_key, key);
            assert_eq!(&record.explicit_hash_key, hash);
            assert_eq!(record.data.as_ref(), &data[..]);
            assert!(record.aggregated);
        }
    }

    #[test]
    fn sub_records_outside_the_shard_are_dropped() {
        let subs = vec![
            ("a".to_owned(), Some("10".to_owned()), b"in".to_vec()),
            ("b".to_owned(), Some("1000".to_owned()), b"out".to_vec()),
        ];
        let records = deaggregate(plain(aggregate(&subs)), Some((0, 100)));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data.as_ref(), b"in");
        assert_eq!(records[0].sub_sequence_number, 0);
    }

    #[test]
    fn bad_magic_or_checksum_is_delivered_as_is() {
        let mut bytes = aggregate(&[("a".to_owned(), None, b"x".to_vec())]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let records = deaggregate(plain(bytes.clone()), None);
        assert_eq!(records.len(), 1);
        assert!(!records[0].aggregated);
        assert_eq!(
            deaggregate(plain(b"plain".to_vec()), None)[0].data.as_ref(),
            b"plain"
        );
        // Truncated protobuf with a valid checksum of garbage: still no panic.
        let garbage = [0xFFu8, 0xFF, 0xFF];
        let mut forged = KPL_MAGIC.to_vec();
        forged.extend_from_slice(&garbage);
        forged.extend_from_slice(&Md5::digest(garbage));
        assert!(!deaggregate(plain(forged), None)[0].aggregated);
    }
}
