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

fn initial_checkpoint(initial: InitialPosition) -> &'static str {
    match initial {
        InitialPosition::Latest => "LATEST",
        InitialPosition::TrimHorizon => "TRIM_HORIZON",
        InitialPosition::AtTimestamp(_) => "AT_TIMESTAMP",
    }
}

/// The lease for a shard as first created.
pub(crate) fn new_lease(
    shard_id: &str,
    checkpoint: &str,
    parents: BTreeSet<String>,
    hash_range: Option<(String, String)>,
) -> Lease {
    let mut lease = Lease::new(shard_id, StoredCheckpoint::new(checkpoint));
    lease.parent_shard_ids = parents;
    lease.hash_key_range = hash_range;
    lease
}

/// Creates the missing leases. Returns how many were created.
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
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    let mut created = 0;
    // ListShards returns shards in creation order, so parents come before their children.
    for shard in &shards {
        if leased.contains(shard.shard_id()) {
            continue;
        }
        let parents: BTreeSet<String> = shard
            .parent_shard_id()
            .into_iter()
            .chain(shard.adjacent_parent_shard_id())
            .filter(|p| listed.contains(p))
            .map(str::to_owned)
            .collect();
        let open = shard
            .sequence_number_range()
            .is_none_or(|r| r.ending_sequence_number().is_none());
        let checkpoint = if parents.iter().any(|p| leased.contains(p)) {
            "TRIM_HORIZON"
        } else if initial == InitialPosition::Latest && !open {
            continue;
        } else {
            initial_checkpoint(initial)
        };
        let range = shard.hash_key_range().map(|r| {
            (
                r.starting_hash_key().to_owned(),
                r.ending_hash_key().to_owned(),
            )
        });
        let lease = new_lease(shard.shard_id(), checkpoint, parents, range);
        if store.create_lease_if_absent(&lease).await? {
            created += 1;
        }
        leased.insert(shard.shard_id().to_owned());
    }
    Ok(created)
}
