//! The line formats the containers write and the runner reads. Every line is space-separated
//! and starts with its kind; fields never contain spaces. Times are milliseconds since the Unix
//! epoch: the containers share the host's clock.
//!
//! A process appends whole batches of lines with one `write` each and starts with a newline, so
//! a line cut short by a SIGKILL stands alone and is skipped as unreadable instead of spoiling
//! the next incarnation's first line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// A file opened for appending, shared by the tasks of one process.
#[derive(Debug)]
pub struct AppendLog {
    file: Mutex<File>,
}

impl AppendLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<AppendLog> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(b"\n")?;
        Ok(AppendLog {
            file: Mutex::new(file),
        })
    }

    /// Appends `text` (whole lines, each ending in a newline) with one write. The page cache
    /// keeps it when the process is killed right after, which is all the checks need: the
    /// containers die, the kernel does not.
    pub fn append(&self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .write_all(text.as_bytes())
    }
}

/// A record payload: the partition key and that key's counter, `k7:42`.
pub fn payload(key: &str, counter: u64) -> String {
    format!("{key}:{counter}")
}

/// The (key, counter) a payload names.
pub fn parse_payload(payload: &str) -> Option<(&str, u64)> {
    let (key, counter) = payload.rsplit_once(':')?;
    Some((key, counter.parse().ok()?))
}

/// Orders sequence numbers (decimal strings of any length) and checkpoint sentinels: the start
/// sentinels before every record, `SHARD_END` after.
pub fn position_rank(position: &str) -> (u8, usize, &str) {
    match position {
        "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP" => (0, 0, ""),
        "SHARD_END" => (2, 0, ""),
        digits => (1, digits.len(), digits),
    }
}

/// A record the producer got acknowledged: `A <ack ms> <key> <counter> <shard> <sequence>`.
#[derive(Debug, Clone)]
pub struct Ack {
    pub time_ms: u64,
    pub key: String,
    pub counter: u64,
    pub shard: String,
    pub sequence: String,
}

impl Ack {
    pub fn line(&self) -> String {
        format!(
            "A {} {} {} {} {}\n",
            self.time_ms, self.key, self.counter, self.shard, self.sequence
        )
    }

    pub fn parse(line: &str) -> Option<Ack> {
        let mut fields = line.split(' ');
        if fields.next()? != "A" {
            return None;
        }
        let ack = Ack {
            time_ms: fields.next()?.parse().ok()?,
            key: fields.next()?.to_owned(),
            counter: fields.next()?.parse().ok()?,
            shard: fields.next()?.to_owned(),
            sequence: fields.next()?.to_owned(),
        };
        fields.next().is_none().then_some(ack)
    }
}

/// Which processor did something: worker, process incarnation (its start time) and the
/// processor's number within that process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessorId {
    pub worker: String,
    pub incarnation: u64,
    pub instance: u64,
}

/// What a processor did, one line each: `<kind> <ms> <worker> <incarnation> <instance> <shard>
/// <detail...>`. Kinds: `R` a record (`<sequence> <payload>`), `I` initialized (`<checkpoint>`),
/// `C` checkpointed (`<position> ok|<error>`), `L` lease lost, `E` shard ended, `S` shutdown
/// requested.
#[derive(Debug, Clone)]
pub struct ProcessorEvent {
    pub kind: char,
    pub time_ms: u64,
    pub processor: ProcessorId,
    pub shard: String,
    pub detail: Vec<String>,
}

impl ProcessorEvent {
    pub fn line(kind: char, processor: &ProcessorId, shard: &str, detail: &[&str]) -> String {
        let mut line = format!(
            "{kind} {} {} {} {} {shard}",
            now_ms(),
            processor.worker,
            processor.incarnation,
            processor.instance
        );
        for field in detail {
            line.push(' ');
            line.push_str(&field.replace(' ', "_"));
        }
        line.push('\n');
        line
    }

    pub fn parse(line: &str) -> Option<ProcessorEvent> {
        let mut fields = line.split(' ');
        let kind = fields.next()?;
        let kind = match kind {
            "R" | "I" | "C" | "L" | "E" | "S" => kind.chars().next()?,
            _ => return None,
        };
        let time_ms = fields.next()?.parse().ok()?;
        let processor = ProcessorId {
            worker: fields.next()?.to_owned(),
            incarnation: fields.next()?.parse().ok()?,
            instance: fields.next()?.parse().ok()?,
        };
        let shard = fields.next()?.to_owned();
        let detail: Vec<String> = fields.map(str::to_owned).collect();
        if kind == 'R' && detail.len() != 2 {
            return None;
        }
        Some(ProcessorEvent {
            kind,
            time_ms,
            processor,
            shard,
            detail,
        })
    }
}

/// The `op` of a worker's heartbeat (its KCL 3 metrics report), logged with lease `-`.
pub const HEARTBEAT: &str = "heartbeat";

/// A conditional write to the lease table and its outcome, as the writing worker saw it:
/// `W <ms> <worker> <incarnation> <op> <lease> <expected counter> <expected owner|-> <new
/// owner|-> <checkpoint owner|-> <ok|no|err> <checkpoint|->`. `new owner` is the owner the write
/// sets (for takes and handoffs), `-` when it keeps it.
#[derive(Debug, Clone)]
pub struct LeaseWrite {
    pub time_ms: u64,
    pub worker: String,
    pub incarnation: u64,
    pub op: String,
    pub lease: String,
    pub expected_counter: u64,
    pub expected_owner: Option<String>,
    pub new_owner: Option<String>,
    pub checkpoint_owner: Option<String>,
    pub outcome: String,
    pub checkpoint: Option<String>,
}

fn optional(field: &str) -> Option<String> {
    (field != "-").then(|| field.to_owned())
}

impl LeaseWrite {
    pub fn line(&self) -> String {
        let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "W {} {} {} {} {} {} {} {} {} {} {}\n",
            self.time_ms,
            self.worker,
            self.incarnation,
            self.op,
            self.lease,
            self.expected_counter,
            dash(&self.expected_owner),
            dash(&self.new_owner),
            dash(&self.checkpoint_owner),
            self.outcome,
            dash(&self.checkpoint)
        )
    }

    pub fn parse(line: &str) -> Option<LeaseWrite> {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != 12 || fields[0] != "W" {
            return None;
        }
        Some(LeaseWrite {
            time_ms: fields[1].parse().ok()?,
            worker: fields[2].to_owned(),
            incarnation: fields[3].parse().ok()?,
            op: fields[4].to_owned(),
            lease: fields[5].to_owned(),
            expected_counter: fields[6].parse().ok()?,
            expected_owner: optional(fields[7]),
            new_owner: optional(fields[8]),
            checkpoint_owner: optional(fields[9]),
            outcome: fields[10].to_owned(),
            checkpoint: optional(fields[11]),
        })
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back() {
        let ack = Ack {
            time_ms: 5,
            key: "k1".into(),
            counter: 3,
            shard: "shardId-000000000001".into(),
            sequence: "123".into(),
        };
        let back = Ack::parse(ack.line().trim_end()).unwrap();
        assert_eq!((back.key.as_str(), back.counter), ("k1", 3));
        let id = ProcessorId {
            worker: "w1".into(),
            incarnation: 9,
            instance: 2,
        };
        let event =
            ProcessorEvent::parse(ProcessorEvent::line('R', &id, "s", &["7", "k1:3"]).trim_end())
                .unwrap();
        assert_eq!(event.processor, id);
        assert_eq!(event.detail, ["7", "k1:3"]);
        assert!(ProcessorEvent::parse("R 1 w1 9").is_none(), "a cut line");
        assert!(position_rank("99") < position_rank("100"));
        assert!(position_rank("TRIM_HORIZON") < position_rank("1"));
        assert!(position_rank("SHARD_END") > position_rank("99999999999999"));
        assert_eq!(parse_payload("k1:3"), Some(("k1", 3)));
    }
}
