//! CreateStream, DeleteStream, DescribeStream and the stream lifecycle.

use super::*;

#[tokio::test]
async fn stream_lifecycle_goes_through_creating_active_and_deleting() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.create_delay = Duration::from_millis(300);
        c
    })
    .await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("lifecycle");
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(3)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let description = described.stream_description().unwrap();
    assert_eq!(description.stream_status(), &StreamStatus::Creating);
    assert_eq!(description.shards().len(), 3);
    assert!(description
        .stream_arn()
        .ends_with(&format!(":stream/{name}")));
    // Writes are refused until the stream is ACTIVE.
    let early = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(
        code(&early.unwrap_err().into_service_error()),
        "ResourceNotFoundException"
    );
    wait_for_active(&client, &name).await;

    let listed = client.list_streams().send().await.unwrap();
    assert!(listed.stream_names().contains(&name));
    assert_eq!(listed.stream_summaries().len(), listed.stream_names().len());

    let dup = client
        .create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup.into_service_error()), "ResourceInUseException");

    client
        .delete_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    kcl_integration_tests::eventually("stream to disappear", || async {
        let r = client
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await;
        match r {
            Err(err) => {
                (code(&err.into_service_error()) == "ResourceNotFoundException").then_some(())
            }
            Ok(_) => None,
        }
    })
    .await;
}

#[tokio::test]
async fn create_stream_validates_its_input() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let bad_name = client
        .create_stream()
        .stream_name("has space")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_name.into_service_error()), "ValidationException");
    let zero = client
        .create_stream()
        .stream_name(unique_name("zero"))
        .shard_count(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&zero.into_service_error()), "ValidationException");
    let too_many = client
        .create_stream()
        .stream_name(unique_name("huge"))
        .shard_count(100_000)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&too_many.into_service_error()),
        "LimitExceededException"
    );

    let on_demand = unique_name("ondemand");
    client
        .create_stream()
        .stream_name(&on_demand)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_name(&on_demand)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.open_shard_count(), 4);
    assert_eq!(
        summary.stream_mode_details().unwrap().stream_mode(),
        &StreamMode::OnDemand
    );
}

#[tokio::test]
async fn unknown_streams_and_shards_are_resource_not_found() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let err = client
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ResourceNotFoundException");
    assert!(err.message().unwrap().contains("nope"), "{err:?}");
    let err = client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(
        code(&err.unwrap_err().into_service_error()),
        "ResourceNotFoundException"
    );

    let name = unique_name("shards");
    create_active_stream(&client, &name, 1).await;
    let err = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ResourceNotFoundException");
}
