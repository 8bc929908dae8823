//! The lease: one row of the lease table, in the Java KCL's schema.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::{LeaseError, Result};

/// A checkpoint as the table stores it: a sequence number or sentinel (`TRIM_HORIZON`, `LATEST`,
/// `AT_TIMESTAMP`, `SHARD_END`) and the sub-sequence number of a KPL sub-record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredCheckpoint {
    /// Decimal sequence number or sentinel name.
    pub sequence_number: String,
    /// Sub-record index; 0 for records that were not aggregated.
    pub sub_sequence_number: u64,
}

impl StoredCheckpoint {
    /// A checkpoint at `sequence_number`, sub-sequence 0.
    pub fn new(sequence_number: impl Into<String>) -> StoredCheckpoint {
        StoredCheckpoint {
            sequence_number: sequence_number.into(),
            sub_sequence_number: 0,
        }
    }

    /// Whether this is the `SHARD_END` sentinel: the shard was processed to its end.
    pub fn is_shard_end(&self) -> bool {
        self.sequence_number == "SHARD_END"
    }
}

/// One lease: who processes a shard and how far it got.
///
/// Field names follow the Java KCL's table attributes (see [`Lease::to_item`]), so a table is
/// readable by either implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// `leaseKey`: the shard id, or `<account>:<stream>:<creationEpoch>:<shardId>` in
    /// multi-stream applications.
    pub lease_key: String,
    /// `leaseCounter`: bumped by every renewal, take, eviction and checkpoint; the fencing token.
    pub lease_counter: u64,
    /// `leaseOwner`: the worker holding the lease; absent when unowned.
    pub lease_owner: Option<String>,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `checkpoint` + `checkpointSubSequenceNumber`.
    pub checkpoint: Option<StoredCheckpoint>,
    /// `pendingCheckpoint` + `pendingCheckpointSubSequenceNumber`: a prepared checkpoint.
    pub pending_checkpoint: Option<StoredCheckpoint>,
    /// `pendingCheckpointState`: application state stored with the prepared checkpoint.
    pub pending_checkpoint_state: Option<Vec<u8>>,
    /// `parentShardId`: both parents of a merged shard, the parent of a split one.
    pub parent_shard_ids: BTreeSet<String>,
    /// `childShardIds`: recorded when the shard ends.
    pub child_shard_ids: BTreeSet<String>,
    /// `startingHashKey` / `endingHashKey`, decimal.
    pub hash_key_range: Option<(String, String)>,
    /// `throughputKBps`: recent throughput, used by KCL 3 balancing.
    pub throughput_kbps: Option<f64>,
    /// `checkpointOwner`: the worker allowed to checkpoint during a graceful handoff.
    pub checkpoint_owner: Option<String>,
}

impl Lease {
    /// A new, unowned lease for `lease_key` starting at `checkpoint`.
    pub fn new(lease_key: impl Into<String>, checkpoint: StoredCheckpoint) -> Lease {
        Lease {
            lease_key: lease_key.into(),
            lease_counter: 0,
            lease_owner: None,
            owner_switches_since_checkpoint: 0,
            checkpoint: Some(checkpoint),
            pending_checkpoint: None,
            pending_checkpoint_state: None,
            parent_shard_ids: BTreeSet::new(),
            child_shard_ids: BTreeSet::new(),
            hash_key_range: None,
            throughput_kbps: None,
            checkpoint_owner: None,
        }
    }

    /// The shard id: the lease key itself, or its last part for multi-stream keys.
    pub fn shard_id(&self) -> &str {
        MultiStreamKey::parse(&self.lease_key).map_or(self.lease_key.as_str(), |k| k.shard_id)
    }

    /// The lease key of another shard of the same stream (a parent or a child): the plain shard
    /// id, or in a multi-stream application the same stream prefix with `shard_id`.
    pub fn sibling_key(&self, shard_id: &str) -> String {
        match MultiStreamKey::parse(&self.lease_key) {
            Some(key) => MultiStreamKey { shard_id, ..key }.format(),
            None => shard_id.to_owned(),
        }
    }

    /// Whether the shard was processed to its end.
    pub fn is_shard_end(&self) -> bool {
        self.checkpoint
            .as_ref()
            .is_some_and(StoredCheckpoint::is_shard_end)
    }

    /// The item written to DynamoDB, with the Java KCL's attribute names and types.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::new();
        item.insert(
            "leaseKey".to_owned(),
            AttributeValue::S(self.lease_key.clone()),
        );
        item.insert(
            "leaseCounter".to_owned(),
            AttributeValue::N(self.lease_counter.to_string()),
        );
        if let Some(owner) = &self.lease_owner {
            item.insert("leaseOwner".to_owned(), AttributeValue::S(owner.clone()));
        }
        item.insert(
            "ownerSwitchesSinceCheckpoint".to_owned(),
            AttributeValue::N(self.owner_switches_since_checkpoint.to_string()),
        );
        if let Some(checkpoint) = &self.checkpoint {
            item.insert(
                "checkpoint".to_owned(),
                AttributeValue::S(checkpoint.sequence_number.clone()),
            );
            item.insert(
                "checkpointSubSequenceNumber".to_owned(),
                AttributeValue::N(checkpoint.sub_sequence_number.to_string()),
            );
        }
        if let Some(pending) = &self.pending_checkpoint {
            item.insert(
                "pendingCheckpoint".to_owned(),
                AttributeValue::S(pending.sequence_number.clone()),
            );
            item.insert(
                "pendingCheckpointSubSequenceNumber".to_owned(),
                AttributeValue::N(pending.sub_sequence_number.to_string()),
            );
        }
        if let Some(state) = &self.pending_checkpoint_state {
            item.insert(
                "pendingCheckpointState".to_owned(),
                AttributeValue::B(Blob::new(state.clone())),
            );
        }
        // DynamoDB rejects empty sets: an empty set is an absent attribute.
        if !self.parent_shard_ids.is_empty() {
            item.insert(
                "parentShardId".to_owned(),
                AttributeValue::Ss(self.parent_shard_ids.iter().cloned().collect()),
            );
        }
        if !self.child_shard_ids.is_empty() {
            item.insert(
                "childShardIds".to_owned(),
                AttributeValue::Ss(self.child_shard_ids.iter().cloned().collect()),
            );
        }
        if let Some((start, end)) = &self.hash_key_range {
            item.insert(
                "startingHashKey".to_owned(),
                AttributeValue::S(start.clone()),
            );
            item.insert("endingHashKey".to_owned(), AttributeValue::S(end.clone()));
        }
        if let Some(kbps) = self.throughput_kbps {
            item.insert(
                "throughputKBps".to_owned(),
                AttributeValue::N(kbps.to_string()),
            );
        }
        if let Some(owner) = &self.checkpoint_owner {
            item.insert(
                "checkpointOwner".to_owned(),
                AttributeValue::S(owner.clone()),
            );
        }
        // Java 3.5 tags every item of the lease table; 2.x readers ignore the attribute.
        item.insert(
            "entityType".to_owned(),
            AttributeValue::S(crate::entities::ENTITY_LEASE.to_owned()),
        );
        // Java's multi-stream leases also carry their stream (as "streamName", though it holds
        // the whole stream identifier) and shard id, and Java filters on them.
        if let Some(key) = MultiStreamKey::parse(&self.lease_key) {
            item.insert(
                "streamName".to_owned(),
                AttributeValue::S(key.stream_identifier()),
            );
            item.insert(
                "shardId".to_owned(),
                AttributeValue::S(key.shard_id.to_owned()),
            );
        }
        item
    }

    /// Whether a lease-table item is a lease. Since Java KCL 3.5 the lease table also holds
    /// worker metrics, the leader lock and migration state, told apart by `entityType`; an item
    /// without it is a lease (every item of a 2.x table).
    pub fn is_lease_item(item: &HashMap<String, AttributeValue>) -> bool {
        match item.get("entityType") {
            None => true,
            Some(AttributeValue::S(kind)) => kind == "LEASE",
            Some(_) => false,
        }
    }

    /// Reads an item written by this library or by the Java KCL.
    ///
    /// # Errors
    /// [`LeaseError::Malformed`] when a required attribute is missing or has the wrong type.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Lease> {
        let key = string(item, "leaseKey")?.ok_or_else(|| malformed("?", "leaseKey is missing"))?;
        let number = |name: &str| -> Result<Option<u64>> {
            match item.get(name) {
                None => Ok(None),
                Some(AttributeValue::N(n)) => {
                    // Counters are integers, but a table edited by hand may hold "3.0".
                    let parsed = n
                        .parse::<u64>()
                        .ok()
                        .or_else(|| n.parse::<f64>().ok().map(|f| f as u64));
                    parsed
                        .map(Some)
                        .ok_or_else(|| malformed(&key, &format!("{name} is not a number: {n}")))
                }
                Some(_) => Err(malformed(&key, &format!("{name} is not of type N"))),
            }
        };
        let set = |name: &str| -> Result<BTreeSet<String>> {
            match item.get(name) {
                None => Ok(BTreeSet::new()),
                Some(AttributeValue::Ss(values)) => Ok(values.iter().cloned().collect()),
                // Older tables store a single parent as a plain string.
                Some(AttributeValue::S(value)) => Ok(BTreeSet::from([value.clone()])),
                Some(_) => Err(malformed(&key, &format!("{name} is not a string set"))),
            }
        };
        let checkpoint_at = |seq: &str, sub: &str| -> Result<Option<StoredCheckpoint>> {
            Ok(string(item, seq)?.map(|sequence_number| StoredCheckpoint {
                sequence_number,
                sub_sequence_number: 0,
            }))
            .and_then(|cp| match cp {
                Some(mut cp) => {
                    cp.sub_sequence_number = number(sub)?.unwrap_or(0);
                    Ok(Some(cp))
                }
                None => Ok(None),
            })
        };
        let hash_key_range = match (
            string(item, "startingHashKey")?,
            string(item, "endingHashKey")?,
        ) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => None,
        };
        Ok(Lease {
            lease_counter: number("leaseCounter")?.unwrap_or(0),
            lease_owner: string(item, "leaseOwner")?,
            owner_switches_since_checkpoint: number("ownerSwitchesSinceCheckpoint")?.unwrap_or(0),
            checkpoint: checkpoint_at("checkpoint", "checkpointSubSequenceNumber")?,
            pending_checkpoint: checkpoint_at(
                "pendingCheckpoint",
                "pendingCheckpointSubSequenceNumber",
            )?,
            pending_checkpoint_state: match item.get("pendingCheckpointState") {
                Some(AttributeValue::B(blob)) => Some(blob.as_ref().to_vec()),
                _ => None,
            },
            parent_shard_ids: set("parentShardId")?,
            child_shard_ids: set("childShardIds")?,
            hash_key_range,
            throughput_kbps: match item.get("throughputKBps") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
            checkpoint_owner: string(item, "checkpointOwner")?,
            lease_key: key,
        })
    }
}

fn malformed(key: &str, why: &str) -> LeaseError {
    LeaseError::Malformed {
        lease_key: key.to_owned(),
        reason: why.to_owned(),
    }
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(
            item.get("leaseKey")
                .and_then(|k| k.as_s().ok())
                .map_or("?", String::as_str),
            &format!("{name} is not of type S"),
        )),
    }
}

/// The lease key of a shard in a multi-stream application:
/// `<account>:<stream>:<creationEpoch>:<shardId>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiStreamKey<'a> {
    /// AWS account id of the stream.
    pub account_id: &'a str,
    /// Stream name.
    pub stream_name: &'a str,
    /// Stream creation time, epoch seconds.
    pub creation_epoch: &'a str,
    /// Shard id.
    pub shard_id: &'a str,
}

impl<'a> MultiStreamKey<'a> {
    /// Parses a multi-stream lease key; `None` for a plain shard id.
    pub fn parse(key: &'a str) -> Option<MultiStreamKey<'a>> {
        let mut parts = key.splitn(4, ':');
        let (account_id, stream_name, creation_epoch, shard_id) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (!account_id.is_empty()
            && !stream_name.is_empty()
            && creation_epoch.bytes().all(|b| b.is_ascii_digit()))
        .then_some(MultiStreamKey {
            account_id,
            stream_name,
            creation_epoch,
            shard_id,
        })
    }

    /// The stream part, `<account>:<stream>:<creationEpoch>` (Java's stream identifier).
    pub fn stream_identifier(&self) -> String {
        format!(
            "{}:{}:{}",
            self.account_id, self.stream_name, self.creation_epoch
        )
    }

    /// The lease key text.
    pub fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.account_id, self.stream_name, self.creation_epoch, self.shard_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_with_every_attribute() {
        let mut lease = Lease::new(
            "shardId-000000000003",
            StoredCheckpoint::new("49590338271490256608559692538361571095921575989136588898"),
        );
        lease.lease_counter = 7;
        lease.lease_owner = Some("worker-a".into());
        lease.owner_switches_since_checkpoint = 2;
        lease.checkpoint.as_mut().unwrap().sub_sequence_number = 4;
        lease.pending_checkpoint = Some(StoredCheckpoint {
            sequence_number: "5".into(),
            sub_sequence_number: 1,
        });
        lease.pending_checkpoint_state = Some(b"state".to_vec());
        lease.parent_shard_ids =
            BTreeSet::from(["shardId-000000000000".into(), "shardId-000000000001".into()]);
        lease.child_shard_ids = BTreeSet::from(["shardId-000000000009".into()]);
        lease.hash_key_range = Some(("0".into(), "340282366920938463463374607431768211455".into()));
        lease.throughput_kbps = Some(12.5);
        lease.checkpoint_owner = Some("worker-b".into());
        let item = lease.to_item();
        assert_eq!(item["leaseCounter"], AttributeValue::N("7".into()));
        assert!(matches!(item["parentShardId"], AttributeValue::Ss(_)));
        assert_eq!(Lease::from_item(&item).unwrap(), lease);

        let bare = Lease::new(
            "shardId-000000000000",
            StoredCheckpoint::new("TRIM_HORIZON"),
        );
        let item = bare.to_item();
        assert!(!item.contains_key("leaseOwner") && !item.contains_key("parentShardId"));
        assert_eq!(Lease::from_item(&item).unwrap(), bare);
    }

    #[test]
    fn malformed_items_are_errors_not_panics() {
        let mut item = Lease::new("k", StoredCheckpoint::new("LATEST")).to_item();
        item.insert("leaseCounter".into(), AttributeValue::S("many".into()));
        assert!(Lease::from_item(&item).is_err());
        assert!(Lease::from_item(&HashMap::new()).is_err());
    }

    #[test]
    fn multi_stream_keys_parse_and_name_their_shard() {
        let key = "123456789012:orders:1700000000:shardId-000000000001";
        let family = Lease::new(key, StoredCheckpoint::new("LATEST"));
        assert_eq!(
            family.sibling_key("shardId-000000000007"),
            "123456789012:orders:1700000000:shardId-000000000007"
        );
        let plain = Lease::new("shardId-000000000001", StoredCheckpoint::new("LATEST"));
        assert_eq!(
            plain.sibling_key("shardId-000000000007"),
            "shardId-000000000007"
        );
        let parsed = MultiStreamKey::parse(key).unwrap();
        assert_eq!(parsed.stream_name, "orders");
        assert_eq!(parsed.format(), key);
        let lease = Lease::new(key, StoredCheckpoint::new("LATEST"));
        assert_eq!(lease.shard_id(), "shardId-000000000001");
        assert_eq!(MultiStreamKey::parse("shardId-000000000001"), None);
    }
}
