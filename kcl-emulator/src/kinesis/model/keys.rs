//! Sequence numbers, hash keys and shard ids: the arithmetic the rest of the store relies on.
//!
//! A sequence number is a 56-digit decimal string, as long as the ones AWS hands out, so clients
//! that wrongly parse them into a `u64` or `u128` fail here as they would against AWS. It encodes
//! `49 | counter (20 digits) | shard index (10 digits) | stream epoch (24 digits)`:
//! - the counter is global to the emulator and only grows, so records of one shard are strictly
//!   increasing and every child shard's records sort after its parents' (children are created
//!   after their parents are closed);
//! - the shard index lets the emulator reject a sequence number used on the wrong shard with the
//!   same message AWS gives, instead of reading garbage;
//! - the stream epoch (its creation time in ms) tells a sequence number of a deleted stream apart
//!   from one of a newer stream with the same name.

use md5::{Digest, Md5};

/// Number of digits in a sequence number.
pub const SEQUENCE_DIGITS: usize = 56;

/// The parts a sequence number is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceParts {
    /// The global append counter.
    pub counter: u64,
    /// Index of the shard the record was appended to.
    pub shard_index: u32,
    /// Creation time of the stream, in milliseconds since the epoch.
    pub stream_epoch: u64,
}

impl SequenceParts {
    /// Formats the parts as a 56-digit sequence number: `49`, then the counter, shard index and
    /// stream epoch, each zero-padded to its width.
    ///
    /// Every stored record and every PutRecords entry gets one, so this writes the digits
    /// itself: zero-padded `format!` of three numbers cost about a fifth of the server's time
    /// on a 500-record PutRecords.
    pub fn format(&self) -> String {
        let mut digits = [b'0'; SEQUENCE_DIGITS];
        digits[..2].copy_from_slice(b"49");
        write_padded(&mut digits[2..22], self.counter);
        write_padded(&mut digits[22..32], u64::from(self.shard_index));
        write_padded(&mut digits[32..], self.stream_epoch);
        String::from_utf8(digits.to_vec()).expect("decimal digits are ASCII")
    }

    /// Parses a sequence number made by [`SequenceParts::format`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<SequenceParts> {
        if text.len() != SEQUENCE_DIGITS
            || !text.starts_with("49")
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(SequenceParts {
            counter: text[2..22].parse().ok()?,
            shard_index: text[22..32].parse().ok()?,
            stream_epoch: text[32..].parse().ok()?,
        })
    }
}

/// Writes `value` in decimal at the right end of `field`, which is already all `'0'`. The field
/// is wide enough for any value written into it (20 digits hold any `u64`, 10 any `u32`).
fn write_padded(field: &mut [u8], mut value: u64) {
    for digit in field.iter_mut().rev() {
        if value == 0 {
            break;
        }
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The hash key a partition key routes to: MD5 of its UTF-8 bytes as a big-endian `u128`.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Parses an `ExplicitHashKey` (decimal, 0 ..= 2^128-1).
pub fn parse_hash_key(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits the whole hash key space into `count` contiguous ranges of (nearly) equal size, as
/// CreateStream and UpdateShardCount do: range `i` starts at `floor(i * 2^128 / count)`.
pub fn even_hash_ranges(count: u32) -> Vec<(u128, u128)> {
    let count = u128::from(count.max(1));
    if count == 1 {
        return vec![(0, u128::MAX)];
    }
    // floor(2^128 / count) without overflowing: 2^128 = MAX + 1.
    let step = u128::MAX / count + u128::from(u128::MAX % count + 1 == count);
    (0..count)
        .map(|i| {
            let start = i * step;
            let end = if i + 1 == count {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

/// The id AWS gives the shard with `index`: `shardId-000000000007`.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The index inside a shard id (`shardId-000000000007` -> 7); accepts the bare number too.
pub fn shard_index(shard_id: &str) -> Option<u32> {
    let digits = shard_id.strip_prefix("shardId-").unwrap_or(shard_id);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_shards_split_the_space_at_two_to_the_127() {
        let ranges = even_hash_ranges(2);
        assert_eq!(
            ranges,
            vec![(0, (1u128 << 127) - 1), (1u128 << 127, u128::MAX)]
        );
    }

    #[test]
    fn md5_routing_matches_the_documented_example() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(partition_key_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn sequence_numbers_pad_every_field_at_its_extremes() {
        for (counter, shard_index, stream_epoch) in
            [(0, 0, 0), (u64::MAX, u32::MAX, u64::MAX), (1, 10, 100)]
        {
            let parts = SequenceParts {
                counter,
                shard_index,
                stream_epoch,
            };
            assert_eq!(
                parts.format(),
                format!("49{counter:020}{shard_index:010}{stream_epoch:024}")
            );
        }
    }

    #[test]
    fn shard_ids_round_trip() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(shard_index("shardId-000000000007"), Some(7));
        assert_eq!(shard_index("7"), Some(7));
        assert_eq!(shard_index("shardId-"), None);
        assert_eq!(shard_index("shard-x"), None);
    }

    proptest! {
        #[test]
        fn sequence_numbers_round_trip_and_order_like_their_counters(
            a in any::<u64>(), b in any::<u64>(), shard in any::<u32>(), epoch in 0u64..10u64.pow(15)
        ) {
            let pa = SequenceParts { counter: a, shard_index: shard, stream_epoch: epoch };
            let pb = SequenceParts { counter: b, shard_index: shard, stream_epoch: epoch };
            prop_assert_eq!(SequenceParts::parse(&pa.format()), Some(pa));
            prop_assert_eq!(pa.format().len(), SEQUENCE_DIGITS);
            prop_assert_eq!(pa.format(), format!("49{a:020}{shard:010}{epoch:024}"));
            // Equal-length decimal strings order like the numbers they spell.
            prop_assert_eq!(pa.format().cmp(&pb.format()), a.cmp(&b));
        }

        #[test]
        fn even_ranges_cover_the_space_without_gaps(count in 1u32..2000) {
            let ranges = even_hash_ranges(count);
            prop_assert_eq!(ranges.len(), count as usize);
            prop_assert_eq!(ranges[0].0, 0);
            prop_assert_eq!(ranges[ranges.len() - 1].1, u128::MAX);
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].0 <= pair[0].1);
                prop_assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }

        #[test]
        fn hash_keys_parse_only_in_range(n in any::<u128>()) {
            prop_assert_eq!(parse_hash_key(&n.to_string()), Some(n));
        }
    }
}
