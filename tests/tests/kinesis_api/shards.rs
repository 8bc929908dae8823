//! SplitShard, MergeShards, UpdateShardCount, ListShards, and closed shards expiring.

use super::*;

#[tokio::test]
async fn split_and_merge_record_lineage_and_close_parents() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("reshard");
    create_active_stream(&client, &name, 2).await;
    let (_, before_seq) = put(&client, &name, "k", b"before").await;
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let s0 = &shards.shards()[0];
    let start: u128 = s0
        .hash_key_range()
        .unwrap()
        .starting_hash_key()
        .parse()
        .unwrap();
    let end: u128 = s0
        .hash_key_range()
        .unwrap()
        .ending_hash_key()
        .parse()
        .unwrap();
    let mid = start + (end - start) / 2;

    // Merging non-adjacent shards is refused.
    client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .unwrap();
    let busy = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000001")
        .new_starting_hash_key((u128::MAX - 5).to_string())
        .send()
        .await;
    assert_eq!(
        code(&busy.unwrap_err().into_service_error()),
        "ResourceInUseException",
        "UPDATING stream refuses reshards"
    );
    wait_for_active(&client, &name).await;

    let listed = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = listed
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    let parent = &listed.shards()[0];
    assert!(parent
        .sequence_number_range()
        .unwrap()
        .ending_sequence_number()
        .is_some());
    for child in &listed.shards()[2..] {
        assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
        let child_start = child
            .sequence_number_range()
            .unwrap()
            .starting_sequence_number();
        assert!(
            child_start > before_seq.as_str(),
            "children sort after their parent's records"
        );
    }
    // shard 3 (upper half of old shard 0) and shard 1 are adjacent; 2 and 1 are not.
    let not_adjacent = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await;
    assert_eq!(
        code(&not_adjacent.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    let closed = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await;
    let closed = closed.unwrap_err().into_service_error();
    assert_eq!(code(&closed), "InvalidArgumentException");
    assert_eq!(
        closed.message(),
        Some(
            format!(
                "Shard shardId-000000000000 in stream {name} under account 000000000000 has \
                 already been merged or split, and thus is not eligible for merging or splitting."
            )
            .as_str()
        )
    );
    let split_closed = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1")
        .send()
        .await;
    assert_eq!(
        code(&split_closed.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let merged = client
        .list_shards()
        .stream_name(&name)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let open: Vec<_> = merged
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(open, ["shardId-000000000002", "shardId-000000000004"]);
    let child = &merged.shards()[1];
    assert_eq!(child.parent_shard_id(), Some("shardId-000000000003"));
    assert_eq!(
        child.adjacent_parent_shard_id(),
        Some("shardId-000000000001")
    );

    // Reading a closed parent to its end yields the children and no next iterator.
    let mut it = iterator(
        &client,
        &name,
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let mut seen = Vec::new();
    loop {
        let out = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
        seen.extend(out.records().iter().map(|r| r.sequence_number().to_owned()));
        match out.next_shard_iterator() {
            Some(next) => it = next.to_owned(),
            None => {
                let children: Vec<_> = out
                    .child_shards()
                    .iter()
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                assert_eq!(children, ["shardId-000000000002", "shardId-000000000003"]);
                break;
            }
        }
    }
    if put(&client, &name, "probe", b"x").await.0 == "shardId-000000000000" {
        panic!("records must never go to a closed shard");
    }
    let _ = seen;
}

/// The retention period of a new stream, plus an hour: long enough for a shard closed now, and
/// every record put now, to have expired.
const PAST_RETENTION: Duration = Duration::from_secs(25 * 3600);

/// Splits the only shard of `name` in two at the middle of its range and waits for ACTIVE.
async fn split_first_shard(client: &aws_sdk_kinesis::Client, name: &str) {
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .expect("split_shard");
    wait_for_active(client, name).await;
}

/// ListShards of `name`: each shard id with its parent.
async fn listed_lineage(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Vec<(String, Option<String>)> {
    client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("list_shards")
        .shards()
        .iter()
        .map(|s| {
            (
                s.shard_id().to_owned(),
                s.parent_shard_id().map(str::to_owned),
            )
        })
        .collect()
}

/// Every record readable from TRIM_HORIZON of each listed shard of `name`.
async fn readable_data(client: &aws_sdk_kinesis::Client, name: &str) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    for (shard, _) in listed_lineage(client, name).await {
        let it = iterator(client, name, &shard, ShardIteratorType::TrimHorizon, None).await;
        let out = client
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap();
        data.extend(out.records().iter().map(|r| r.data().as_ref().to_vec()));
    }
    data.sort();
    data
}

/// The children of a split, each naming `shardId-000000000000` as parent.
fn split_children() -> Vec<(String, Option<String>)> {
    ["shardId-000000000001", "shardId-000000000002"]
        .map(|id| (id.to_owned(), Some("shardId-000000000000".to_owned())))
        .to_vec()
}

#[tokio::test]
async fn closed_shards_expire_once_the_retention_period_has_passed() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("expiry");
    create_active_stream(&client, &name, 1).await;
    put(&client, &name, "k", b"in the parent").await;
    split_first_shard(&client, &name).await;
    put(&client, &name, "k", b"in a child, before").await;
    let parent = ("shardId-000000000000".to_owned(), None);
    let mut all = vec![parent];
    all.extend(split_children());
    assert_eq!(listed_lineage(&client, &name).await, all);

    emulator.advance_clock(PAST_RETENTION);

    // Gone from every listing; its children still name it as their parent.
    assert_eq!(listed_lineage(&client, &name).await, split_children());
    let described = client
        .describe_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let described: Vec<_> = described
        .stream_description()
        .unwrap()
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(described, ["shardId-000000000001", "shardId-000000000002"]);
    let summary = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );

    // Not served either, as a shard that does not exist.
    let missing = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    assert_eq!(
        missing.message(),
        Some(
            format!(
                "Shard shardId-000000000000 in stream {name} under account 000000000000 \
                 does not exist"
            )
            .as_str()
        )
    );
    let split = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&split), "ResourceNotFoundException");

    // The records put before the advance are trimmed; new ones are read as usual.
    assert!(readable_data(&client, &name).await.is_empty());
    put(&client, &name, "k", b"after").await;
    assert_eq!(readable_data(&client, &name).await, [b"after".to_vec()]);
}

#[tokio::test]
async fn shard_expiry_survives_restarts_of_a_durable_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::embedded();
        c.data_dir = Some(dir.path().to_owned());
        c
    };
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("durable-expiry");
    create_active_stream(&client, &name, 1).await;
    split_first_shard(&client, &name).await;
    emulator.shutdown().await;

    // When the parent closed was saved: it expires once retention has passed since then.
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    assert_eq!(listed_lineage(&client, &name).await.len(), 3);
    emulator.advance_clock(PAST_RETENTION);
    assert_eq!(listed_lineage(&client, &name).await, split_children());
    emulator.shutdown().await;

    // The advanced clock was saved too: the parent does not come back after a restart.
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    assert_eq!(listed_lineage(&client, &name).await, split_children());
}

#[tokio::test]
async fn update_shard_count_scales_up_and_down_with_valid_lineage() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("scale");
    create_active_stream(&client, &name, 3).await;
    for target in [5, 4, 2] {
        let out = client
            .update_shard_count()
            .stream_name(&name)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
        assert_eq!(out.target_shard_count(), Some(target));
        wait_for_active(&client, &name).await;
        let all = client
            .list_shards()
            .stream_name(&name)
            .send()
            .await
            .unwrap();
        let open: Vec<_> = all
            .shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .unwrap()
                    .ending_sequence_number()
                    .is_none()
            })
            .collect();
        assert_eq!(open.len(), target as usize);
        // Open shards tile the hash space exactly.
        let mut ranges: Vec<(u128, u128)> = open
            .iter()
            .map(|s| {
                let r = s.hash_key_range().unwrap();
                (
                    r.starting_hash_key().parse().unwrap(),
                    r.ending_hash_key().parse().unwrap(),
                )
            })
            .collect();
        ranges.sort();
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u128::MAX);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        // Every non-root shard names parents that exist.
        let ids: Vec<_> = all.shards().iter().map(|s| s.shard_id()).collect();
        for s in all.shards() {
            for p in s
                .parent_shard_id()
                .into_iter()
                .chain(s.adjacent_parent_shard_id())
            {
                assert!(ids.contains(&p));
            }
        }
    }
    let too_far = client
        .update_shard_count()
        .stream_name(&name)
        .target_shard_count(9)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    assert_eq!(
        code(&too_far.unwrap_err().into_service_error()),
        "LimitExceededException"
    );
}

#[tokio::test]
async fn list_shards_pages_with_next_token() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("paging");
    create_active_stream(&client, &name, 5).await;
    let mut token = None;
    let mut ids = Vec::new();
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t).max_results(2),
            None => client.list_shards().stream_name(&name).max_results(2),
        };
        let out = req.send().await.unwrap();
        ids.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5);
    let both = client
        .list_shards()
        .stream_name(&name)
        .next_token("x")
        .send()
        .await;
    assert_eq!(
        code(&both.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    let after = client
        .list_shards()
        .stream_name(&name)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000002")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(after.shards().len(), 2);
}

#[tokio::test]
async fn shard_id_members_must_match_the_model_pattern() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("shard-ids");
    create_active_stream(&client, &name, 2).await;
    let pattern = |value: &str, member: &str| {
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )
    };
    let refused = |result: Result<(), aws_sdk_kinesis::Error>| {
        let err = result.unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{err:?}");
        err.message().unwrap_or_default().to_owned()
    };

    let split = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId/000000000000")
        .new_starting_hash_key("1")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(split),
        pattern("shardId/000000000000", "shardToSplit")
    );
    let merge = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId 000000000001")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(merge),
        pattern("shardId 000000000001", "adjacentShardToMerge")
    );
    let long = "s".repeat(129);
    let iterator = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(&long)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(iterator),
        format!(
            "1 validation error detected: Value '{long}' at 'shardId' failed to satisfy \
             constraint: Member must have length between 1 and 128"
        )
    );
    let listed = client
        .list_shards()
        .stream_name(&name)
        .exclusive_start_shard_id("shardId:0")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(listed),
        pattern("shardId:0", "exclusiveStartShardId")
    );
    let described = client
        .describe_stream()
        .stream_name(&name)
        .exclusive_start_shard_id("shardId*")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(described),
        pattern("shardId*", "exclusiveStartShardId")
    );

    // Well-formed ids that name no shard are still ResourceNotFoundException.
    let unknown = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&unknown), "ResourceNotFoundException");
    // Nothing was resharded by the refused calls.
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 2);
}
