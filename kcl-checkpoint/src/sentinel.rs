//! Extended sequence numbers: a sequence number or sentinel, plus a sub-sequence number.

use std::cmp::Ordering;
use std::fmt;

use kcl_lease::StoredCheckpoint;

/// A position in a shard: a sentinel or a sequence number.
///
/// Real sequence numbers have up to 56 decimal digits, more than a `u128` holds, so they are
/// kept as normalized decimal strings and compared by length, then digit by digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SequenceNumber {
    /// Start at a timestamp (a lease created with the AT_TIMESTAMP initial position).
    AtTimestamp,
    /// The oldest record still retained.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// A record's sequence number, decimal without leading zeros.
    Number(String),
    /// The shard was processed to its end.
    ShardEnd,
}

impl SequenceNumber {
    /// Parses a sentinel name or a decimal sequence number.
    ///
    /// # Errors
    /// [`InvalidSequenceNumber`] for anything else.
    pub fn parse(text: &str) -> Result<SequenceNumber, InvalidSequenceNumber> {
        match text {
            "AT_TIMESTAMP" => Ok(SequenceNumber::AtTimestamp),
            "TRIM_HORIZON" => Ok(SequenceNumber::TrimHorizon),
            "LATEST" => Ok(SequenceNumber::Latest),
            "SHARD_END" => Ok(SequenceNumber::ShardEnd),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                let trimmed = digits.trim_start_matches('0');
                Ok(SequenceNumber::Number(if trimmed.is_empty() {
                    "0".to_owned()
                } else {
                    trimmed.to_owned()
                }))
            }
            other => Err(InvalidSequenceNumber(other.to_owned())),
        }
    }

    /// Whether this is a sentinel rather than a record's sequence number.
    pub fn is_sentinel(&self) -> bool {
        !matches!(self, SequenceNumber::Number(_))
    }

    fn rank(&self) -> u8 {
        match self {
            SequenceNumber::AtTimestamp => 0,
            SequenceNumber::TrimHorizon => 1,
            SequenceNumber::Latest => 2,
            SequenceNumber::Number(_) => 3,
            SequenceNumber::ShardEnd => 4,
        }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SequenceNumber::Number(a), SequenceNumber::Number(b)) => {
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SequenceNumber::AtTimestamp => "AT_TIMESTAMP",
            SequenceNumber::TrimHorizon => "TRIM_HORIZON",
            SequenceNumber::Latest => "LATEST",
            SequenceNumber::ShardEnd => "SHARD_END",
            SequenceNumber::Number(n) => n,
        })
    }
}

/// Text that is neither a sentinel nor a decimal sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sequence number or sentinel")]
pub struct InvalidSequenceNumber(pub String);

/// A sequence number with the sub-sequence number of a KPL sub-record; totally ordered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedSequenceNumber {
    /// The record's sequence number or a sentinel.
    pub sequence_number: SequenceNumber,
    /// The sub-record index; 0 when the record was not aggregated.
    pub sub_sequence_number: u64,
}

impl ExtendedSequenceNumber {
    /// `TRIM_HORIZON`.
    pub const TRIM_HORIZON: ExtendedSequenceNumber = Self::sentinel(SequenceNumber::TrimHorizon);
    /// `LATEST`.
    pub const LATEST: ExtendedSequenceNumber = Self::sentinel(SequenceNumber::Latest);
    /// `AT_TIMESTAMP`.
    pub const AT_TIMESTAMP: ExtendedSequenceNumber = Self::sentinel(SequenceNumber::AtTimestamp);
    /// `SHARD_END`.
    pub const SHARD_END: ExtendedSequenceNumber = Self::sentinel(SequenceNumber::ShardEnd);

    const fn sentinel(sequence_number: SequenceNumber) -> ExtendedSequenceNumber {
        ExtendedSequenceNumber {
            sequence_number,
            sub_sequence_number: 0,
        }
    }

    /// Parses `sequence_number` with `sub_sequence_number`.
    ///
    /// # Errors
    /// [`InvalidSequenceNumber`] for malformed text.
    pub fn new(
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<ExtendedSequenceNumber, InvalidSequenceNumber> {
        Ok(ExtendedSequenceNumber {
            sequence_number: SequenceNumber::parse(sequence_number)?,
            sub_sequence_number,
        })
    }

    /// The table form.
    pub fn to_stored(&self) -> StoredCheckpoint {
        StoredCheckpoint {
            sequence_number: self.sequence_number.to_string(),
            sub_sequence_number: self.sub_sequence_number,
        }
    }

    /// Reads the table form.
    ///
    /// # Errors
    /// [`InvalidSequenceNumber`] when the table holds something else.
    pub fn from_stored(
        stored: &StoredCheckpoint,
    ) -> Result<ExtendedSequenceNumber, InvalidSequenceNumber> {
        Self::new(&stored.sequence_number, stored.sub_sequence_number)
    }
}

impl fmt::Display for ExtendedSequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.sequence_number, self.sub_sequence_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sentinels_order_around_numbers() {
        let number = ExtendedSequenceNumber::new(
            "49590338271490256608559692538361571095921575989136588898",
            0,
        )
        .unwrap();
        assert!(ExtendedSequenceNumber::TRIM_HORIZON < number);
        assert!(ExtendedSequenceNumber::LATEST < number);
        assert!(number < ExtendedSequenceNumber::SHARD_END);
        assert!(
            ExtendedSequenceNumber::new("5", 3).unwrap()
                < ExtendedSequenceNumber::new("5", 4).unwrap()
        );
        assert!(
            ExtendedSequenceNumber::new("9", 9).unwrap()
                < ExtendedSequenceNumber::new("10", 0).unwrap()
        );
        assert_eq!(
            ExtendedSequenceNumber::new("007", 0).unwrap(),
            ExtendedSequenceNumber::new("7", 0).unwrap()
        );
        assert!(SequenceNumber::parse("12a").is_err() && SequenceNumber::parse("").is_err());
    }

    fn digits() -> impl Strategy<Value = String> {
        "[1-9][0-9]{0,60}"
    }

    proptest! {
        #[test]
        fn ordering_matches_big_integer_ordering(a in digits(), b in digits(), sa in 0u64..5, sb in 0u64..5) {
            let x = ExtendedSequenceNumber::new(&a, sa).unwrap();
            let y = ExtendedSequenceNumber::new(&b, sb).unwrap();
            let numeric = a.len().cmp(&b.len()).then(a.cmp(&b)).then(sa.cmp(&sb));
            prop_assert_eq!(x.cmp(&y), numeric);
        }

        #[test]
        fn table_form_round_trips(a in digits(), sub in any::<u64>()) {
            let x = ExtendedSequenceNumber::new(&a, sub).unwrap();
            prop_assert_eq!(ExtendedSequenceNumber::from_stored(&x.to_stored()).unwrap(), x);
        }
    }
}
