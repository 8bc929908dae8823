//! Stream, shard, consumer, channel and queue metadata, and its crash-safe snapshot on disk.
//!
//! The snapshot is small (no records), so it is rewritten whole on every change: written to a
//! temporary file, synced, renamed over `meta.json`, and the directory synced. A crash leaves
//! either the old or the new snapshot, never a mix.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ChannelMeta, QueueMeta, Status, Stream};

/// A registered enhanced fan-out consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumerMeta {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) deleting_until: Option<i64>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    /// The consumer's own resource policy (JSON), apart from its stream's.
    #[serde(default)]
    pub(crate) resource_policy: Option<String>,
}

/// The state at `now` of a resource that is CREATING until `creating_until`, UPDATING until
/// `updating_until` and DELETING from the moment `deleting_until` is set: the one rule every
/// resource's lifecycle follows.
fn status_at(
    now: i64,
    creating_until: i64,
    updating_until: Option<i64>,
    deleting_until: Option<i64>,
) -> Status {
    if deleting_until.is_some() {
        Status::Deleting
    } else if now < creating_until {
        Status::Creating
    } else if updating_until.is_some_and(|until| now < until) {
        Status::Updating
    } else {
        Status::Active
    }
}

/// Whether a deletion that ends at `deleting_until` has completed by `now`.
fn deleted_at(now: i64, deleting_until: Option<i64>) -> bool {
    deleting_until.is_some_and(|until| now >= until)
}

/// When an account-level resource (a channel or a queue) was created and until when it is
/// CREATING, UPDATING and DELETING. Stored flattened, as the fields of the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lifecycle {
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) updating_until: Option<i64>,
    pub(crate) deleting_until: Option<i64>,
}

impl Lifecycle {
    /// A resource created at `now`, CREATING for `create_delay_ms`.
    pub(crate) fn new(now: i64, create_delay_ms: i64) -> Lifecycle {
        Lifecycle {
            created_ms: now,
            creating_until: now + create_delay_ms,
            updating_until: None,
            deleting_until: None,
        }
    }

    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(
            now,
            self.creating_until,
            self.updating_until,
            self.deleting_until,
        )
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }

    /// UPDATING for `delay_ms` from `now`.
    pub(crate) fn begin_update(&mut self, now: i64, delay_ms: i64) {
        self.updating_until = Some(now + delay_ms);
    }

    /// DELETING from `now`, gone `delay_ms` later; a deletion already under way keeps its end.
    pub(crate) fn begin_delete(&mut self, now: i64, delay_ms: i64) {
        self.deleting_until.get_or_insert(now + delay_ms);
    }
}

impl ConsumerMeta {
    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(now, self.creating_until, None, self.deleting_until)
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }
}

/// Everything about a stream except its shards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamSettings {
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) updating_until: Option<i64>,
    pub(crate) deleting_until: Option<i64>,
    pub(crate) retention_hours: u32,
    /// `PROVISIONED` or `ON_DEMAND`.
    pub(crate) mode: String,
    /// `NONE` or `KMS`.
    pub(crate) encryption_type: String,
    pub(crate) key_id: Option<String>,
    pub(crate) shard_level_metrics: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) consumers: Vec<ConsumerMeta>,
    pub(crate) resource_policy: Option<String>,
    pub(crate) max_record_size_kib: u32,
    pub(crate) warm_throughput_mibps: Option<u32>,
    /// `USER_PARTITION_KEY` (route by MD5 of the partition key) or `AUTO` (spread records over
    /// the open shards whatever their key).
    #[serde(default = "default_distribution")]
    pub(crate) record_distribution: String,
}

fn default_distribution() -> String {
    "USER_PARTITION_KEY".to_owned()
}

impl StreamSettings {
    /// Settings of a stream created now, CREATING until `creating_until`.
    pub(crate) fn new(now: i64, creating_until: i64, mode: &str) -> StreamSettings {
        StreamSettings {
            created_ms: now,
            creating_until,
            updating_until: None,
            deleting_until: None,
            retention_hours: 24,
            mode: mode.to_owned(),
            encryption_type: "NONE".to_owned(),
            key_id: None,
            shard_level_metrics: Vec::new(),
            tags: BTreeMap::new(),
            consumers: Vec::new(),
            resource_policy: None,
            max_record_size_kib: 1024,
            warm_throughput_mibps: None,
            record_distribution: default_distribution(),
        }
    }

    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(
            now,
            self.creating_until,
            self.updating_until,
            self.deleting_until,
        )
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedShard {
    pub(crate) index: u32,
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    pub(crate) adjacent_parent: Option<String>,
    /// Decimal strings: JSON numbers cannot carry 128 bits.
    pub(crate) start_hash: String,
    pub(crate) end_hash: String,
    pub(crate) starting_counter: u64,
    pub(crate) ending_counter: Option<u64>,
    /// When the shard closed (store clock, ms); absent from snapshots written before shards
    /// expired.
    #[serde(default)]
    pub(crate) closed_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedStream {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) settings: StreamSettings,
    pub(crate) shards: Vec<SavedShard>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) version: u32,
    /// The append counter when the snapshot was taken; recovery resumes above it.
    pub(crate) counter: u64,
    /// The store clock when the snapshot was taken; the clock resumes from at least this, so
    /// time moved forward for testing does not run back on restart. Absent (0) from snapshots
    /// written before the clock could be moved.
    #[serde(default)]
    pub(crate) clock_ms: i64,
    pub(crate) streams: Vec<SavedStream>,
    /// Absent from snapshots written before channels existed.
    #[serde(default)]
    pub(crate) channels: Vec<ChannelMeta>,
    /// Absent from snapshots written before queues existed.
    #[serde(default)]
    pub(crate) queues: Vec<QueueMeta>,
}

const META_FILE: &str = "meta.json";

pub(crate) fn save(
    root: &Path,
    streams: &[&Arc<Stream>],
    channels: &[ChannelMeta],
    queues: &[QueueMeta],
    counter: u64,
    clock_ms: i64,
) -> io::Result<()> {
    let snapshot = Snapshot {
        version: 1,
        counter,
        clock_ms,
        streams: streams
            .iter()
            .map(|stream| {
                let state = stream.lock();
                SavedStream {
                    name: stream.name.clone(),
                    epoch: stream.epoch,
                    settings: state.settings.clone(),
                    shards: state
                        .shards
                        .iter()
                        .map(|s| {
                            let log = s.lock();
                            SavedShard {
                                index: s.index,
                                id: s.id.clone(),
                                parent: s.parent.clone(),
                                adjacent_parent: s.adjacent_parent.clone(),
                                start_hash: s.start_hash.to_string(),
                                end_hash: s.end_hash.to_string(),
                                starting_counter: s.starting_counter,
                                ending_counter: log.ending_counter,
                                closed_ms: log.closed_ms,
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
        channels: channels.to_vec(),
        queues: queues.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&snapshot).map_err(io::Error::other)?;
    let tmp = root.join("meta.json.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, root.join(META_FILE))?;
    File::open(root)?.sync_all()?;
    Ok(())
}

pub(crate) fn load(root: &Path) -> io::Result<Option<Snapshot>> {
    match fs::read(root.join(META_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt {META_FILE}: {err}"),
            )
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}
