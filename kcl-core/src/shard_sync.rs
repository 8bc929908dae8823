//! Shard sync: list the stream's shards and create a lease for every shard that needs one.
//!
//! With TRIM_HORIZON or AT_TIMESTAMP every retained shard gets a lease, closed ancestors
//! included, so no retained record is skipped; children then wait for their parents. With
//! LATEST only open shards get leases (the old data is not wanted). A shard whose parent has a
//! lease always starts at TRIM_HORIZON: it holds what comes after its parent.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::Shard;
use kcl_lease::{Lease, LeaseStore, StoredCheckpoint};

use crate::config::InitialPosition;
use crate::error::{Error, Result};
use crate::retrieval::StreamTarget;

/// Lists every shard of the stream, following NextToken pages, backing off when throttled.
pub(crate) async fn list_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamTarget,
) -> Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    let mut attempt = 0u32;
    loop {
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client
                .list_shards()
                .set_stream_name(stream.name.clone())
                .set_stream_arn(stream.arn.clone()),
        };
        match request.send().await {
            Ok(page) => {
                attempt = 0;
                shards.extend(page.shards().iter().cloned());
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => return Ok(shards),
                }
            }
            Err(err) => {
                let code = err.code().unwrap_or_default().to_owned();
                let throttled = matches!(
                    code.as_str(),
                    "LimitExceededException" | "ThrottlingException" | "ResourceInUseException"
                );
                attempt += 1;
                if !throttled || attempt > 8 {
                    return Err(Error::Kinesis {
                        operation: "ListShards",
                        message: format!("{code}: {}", err.message().unwrap_or("no message")),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
        }
    }
}

/// The lease-key prefix of `stream` in a multi-stream application,
/// `<account>:<stream>:<creationEpoch>:`, from the stream's ARN and creation time.
///
/// # Errors
/// When the stream cannot be described.
pub(crate) async fn multi_stream_prefix(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamTarget,
) -> Result<String> {
    let mut attempt = 0u32;
    let summary = loop {
        let described = client
            .describe_stream_summary()
            .set_stream_name(stream.name.clone())
            .set_stream_arn(stream.arn.clone())
            .send()
            .await;
        match described {
            Ok(out) => match out.stream_description_summary {
                Some(summary) => break summary,
                None => {
                    return Err(Error::Kinesis {
                        operation: "DescribeStreamSummary",
                        message: "the answer has no StreamDescriptionSummary".to_owned(),
                    })
                }
            },
            Err(err) => {
                let code = err.code().unwrap_or_default().to_owned();
                attempt += 1;
                if !matches!(
                    code.as_str(),
                    "LimitExceededException" | "ThrottlingException"
                ) || attempt > 8
                {
                    return Err(Error::Kinesis {
                        operation: "DescribeStreamSummary",
                        message: format!("{code}: {}", err.message().unwrap_or("no message")),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
        }
    };
    // arn:aws:kinesis:<region>:<account>:stream/<name>
    let arn = summary.stream_arn();
    let account = arn.split(':').nth(4).unwrap_or_default();
    let epoch = summary.stream_creation_timestamp().secs();
    Ok(format!("{account}:{}:{epoch}:", summary.stream_name()))
}

/// A listed shard's hash key range (start, end), decimal.
pub(crate) fn hash_range(shard: &Shard) -> Option<(String, String)> {
    shard.hash_key_range().map(|r| {
        (
            r.starting_hash_key().to_owned(),
            r.ending_hash_key().to_owned(),
        )
    })
}

/// A listed shard's parents: the one it was split from, or both it was merged from.
pub(crate) fn parents_of(shard: &Shard) -> impl Iterator<Item = &str> {
    shard
        .parent_shard_id()
        .into_iter()
        .chain(shard.adjacent_parent_shard_id())
}

fn initial_checkpoint(initial: InitialPosition) -> &'static str {
    match initial {
        InitialPosition::Latest => "LATEST",
        InitialPosition::TrimHorizon => "TRIM_HORIZON",
        InitialPosition::AtTimestamp(_) => "AT_TIMESTAMP",
    }
}

/// The lease for a shard as first created; `lease_key` is the shard id or, in a multi-stream
/// application, the stream-prefixed key. Parents are plain shard ids, as in the Java KCL.
pub(crate) fn new_lease(
    lease_key: &str,
    checkpoint: &str,
    parents: BTreeSet<String>,
    hash_range: Option<(String, String)>,
) -> Lease {
    let mut lease = Lease::new(lease_key, StoredCheckpoint::new(checkpoint));
    lease.parent_shard_ids = parents;
    lease.hash_key_range = hash_range;
    lease
}

/// Which listed shards are finished because a descendant of theirs (child, grandchild, ...)
/// already has a lease: a child lease only exists once its parent reached its end (the parent's
/// consumer creates it at SHARD_END), or was created after the parent by a sync that saw both.
/// Such a shard must never get a lease again, even when its own lease was deleted by cleanup:
/// a new lease would start at TRIM_HORIZON or AT_TIMESTAMP and replay the whole shard.
///
/// `shards` is in ListShards order (creation order, so parents come before their children);
/// walking it backwards decides every child before its parents, without recursion.
fn finished_by_descendants(shards: &[Shard], leased: &dyn Fn(&str) -> bool) -> HashSet<String> {
    let mut finished: HashSet<String> = HashSet::new();
    for shard in shards.iter().rev() {
        let id = shard.shard_id();
        if leased(id) || finished.contains(id) {
            for parent in parents_of(shard) {
                finished.insert(parent.to_owned());
            }
        }
    }
    finished
}

/// Creates the missing leases. Returns how many were created.
///
/// A shard gets no lease when it has one, when a descendant has one (it is finished, see
/// [`finished_by_descendants`]), or when the initial position is LATEST and it is closed.
pub(crate) async fn sync_leases(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamTarget,
    store: &dyn LeaseStore,
    initial: InitialPosition,
) -> Result<usize> {
    let shards = list_shards(client, stream).await?;
    let mut leased: HashSet<String> = store
        .list_leases()
        .await?
        .into_iter()
        .map(|l| l.lease_key)
        .collect();
    let finished = finished_by_descendants(&shards, &|id| leased.contains(&stream.lease_key(id)));
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    let mut created = 0;
    for shard in &shards {
        let key = stream.lease_key(shard.shard_id());
        if leased.contains(&key) || finished.contains(shard.shard_id()) {
            continue;
        }
        // A parent no longer listed (trimmed past retention) still counts while its lease
        // exists: the child waits for it, and its consumer finds the shard gone and ends it.
        let parents: BTreeSet<String> = parents_of(shard)
            .filter(|p| listed.contains(p) || leased.contains(&stream.lease_key(p)))
            .map(str::to_owned)
            .collect();
        let open = shard
            .sequence_number_range()
            .is_none_or(|r| r.ending_sequence_number().is_none());
        let checkpoint = if parents
            .iter()
            .any(|p| leased.contains(&stream.lease_key(p)))
        {
            "TRIM_HORIZON"
        } else if initial == InitialPosition::Latest && !open {
            continue;
        } else {
            initial_checkpoint(initial)
        };
        let lease = new_lease(&key, checkpoint, parents, hash_range(shard));
        if store.create_lease_if_absent(&lease).await? {
            created += 1;
        }
        leased.insert(key);
    }
    Ok(created)
}
