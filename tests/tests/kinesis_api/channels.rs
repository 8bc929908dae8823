//! Channels: delivery from an on-demand stream to S3 or S3 Tables. The emulator keeps the
//! configuration and runs the lifecycle; these tests drive it with the SDK's own types. Also
//! resource policies on streams, consumers and channels, which need a channel.

use super::*;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/channel-delivery";

const BUCKET_ARN: &str = "arn:aws:s3:::delivery-bucket";

const BUCKET_OWNER: &str = "123456789012";

/// Creates an ACTIVE on-demand stream and returns its ARN.
async fn on_demand_stream(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_for_active(client, name).await;
    stream_arn(client, name).await
}

async fn stream_arn(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned()
}

fn source(stream_arn: &str, format: RecordFormatType) -> ChannelStreamConfiguration {
    ChannelStreamConfiguration::builder()
        .stream_arn(stream_arn)
        .record_configuration(
            RecordConfiguration::builder()
                .record_format_type(format)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn s3_destination() -> S3DestinationConfiguration {
    s3_destination_with_freshness(None)
}

fn s3_destination_with_freshness(seconds: Option<i32>) -> S3DestinationConfiguration {
    S3DestinationConfiguration::builder()
        .set_data_freshness_in_seconds(seconds)
        .storage_configuration(
            S3StorageConfiguration::builder()
                .bucket_arn(BUCKET_ARN)
                .expected_bucket_owner(BUCKET_OWNER)
                .compression_type(S3CompressionType::Gzip)
                .build()
                .unwrap(),
        )
        .build()
}

async fn create_s3_channel(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    stream_arn: &str,
) -> ChannelDescription {
    client
        .create_channel()
        .channel_name(name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(stream_arn, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone()
}

async fn describe_channel(client: &aws_sdk_kinesis::Client, arn: &str) -> ChannelDescription {
    client
        .describe_channel()
        .channel_arn(arn)
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone()
}

async fn wait_for_channel(
    client: &aws_sdk_kinesis::Client,
    arn: &str,
    status: ChannelStatus,
) -> ChannelDescription {
    kcl_integration_tests::eventually("channel to reach the expected status", || async {
        let described = describe_channel(client, arn).await;
        (described.channel_status() == &status).then_some(described)
    })
    .await
}

#[tokio::test]
async fn channel_lifecycle_defaults_updates_tags_and_deletion() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.create_delay = Duration::from_millis(300);
        c.update_delay = Duration::from_millis(300);
        c
    })
    .await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("channel-src")).await;
    let name = unique_name("to-s3");

    let created = client
        .create_channel()
        .channel_name(&name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .tags("team", "data")
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    assert_eq!(created.channel_name(), name);
    assert_eq!(created.channel_status(), &ChannelStatus::Creating);
    assert_eq!(
        created.channel_arn(),
        format!(
            "arn:aws:kinesis:us-east-1:000000000000:channel/{}",
            created.channel_id()
        )
    );
    assert_eq!(created.service_execution_role_arn(), ROLE_ARN);
    let sources = created.stream_configuration_list();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].stream_arn(), stream);
    assert_eq!(
        sources[0]
            .record_configuration()
            .unwrap()
            .record_format_type(),
        &RecordFormatType::Json
    );
    // The service's defaults: five-minute freshness, STANDARD storage, the destination bucket
    // as dead-letter queue, logging off with the documented log group and stream names.
    let s3 = created.s3_destination_configuration().unwrap();
    assert_eq!(s3.data_freshness_in_seconds(), 300);
    assert_eq!(
        s3.storage_configuration().unwrap().storage_class(),
        Some(&S3StorageClass::Standard)
    );
    assert_eq!(
        s3.dead_letter_queue_s3_configuration()
            .unwrap()
            .bucket_arn(),
        BUCKET_ARN
    );
    let logs = created
        .logging_configuration()
        .unwrap()
        .cloud_watch_logs()
        .unwrap();
    assert!(!logs.enabled());
    assert_eq!(
        logs.log_group_name(),
        Some(format!("/aws/kinesis/{name}/{}", created.channel_id()).as_str())
    );
    assert_eq!(logs.log_stream_name(), Some("DestinationDelivery"));
    assert!(created.s3_tables_destination_configuration().is_none());

    let arn = created.channel_arn().to_owned();
    let active = wait_for_channel(&client, &arn, ChannelStatus::Active).await;
    assert_eq!(
        active.channel_creation_timestamp(),
        created.channel_creation_timestamp()
    );

    // Tags through the ARN-based tagging calls.
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "team");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["env"]);

    // An update goes through UPDATING; a second one meanwhile is refused.
    let updated = client
        .update_channel()
        .channel_arn(&arn)
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .logging_configuration(
            ChannelLoggingUpdateInput::builder()
                .cloud_watch_logs(
                    CloudWatchLogsUpdateInput::builder()
                        .enabled(true)
                        .log_group_name("/delivery/errors")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    assert_eq!(updated.channel_status(), &ChannelStatus::Updating);
    let busy = client
        .update_channel()
        .channel_arn(&arn)
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(busy.is_resource_in_use_exception(), "{busy:?}");
    let after = wait_for_channel(&client, &arn, ChannelStatus::Active).await;
    assert_eq!(
        after
            .s3_destination_configuration()
            .unwrap()
            .data_freshness_in_seconds(),
        600
    );
    let logs = after
        .logging_configuration()
        .unwrap()
        .cloud_watch_logs()
        .unwrap();
    assert!(logs.enabled());
    assert_eq!(logs.log_group_name(), Some("/delivery/errors"));
    // A table destination's setting does not apply to an S3 channel.
    let wrong = client
        .update_channel()
        .channel_arn(&arn)
        .s3_tables_destination_configuration(
            S3TablesDestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(wrong.is_invalid_argument_exception(), "{wrong:?}");

    // The name is taken while the channel lives, and free again once it is deleted.
    let duplicate = client
        .create_channel()
        .channel_name(&name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(duplicate.is_resource_in_use_exception(), "{duplicate:?}");
    client
        .delete_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe_channel(&client, &arn).await.channel_status(),
        &ChannelStatus::Deleting
    );
    kcl_integration_tests::eventually("the deleted channel to disappear", || async {
        let err = client
            .describe_channel()
            .channel_arn(&arn)
            .send()
            .await
            .err()?;
        err.into_service_error()
            .is_resource_not_found_exception()
            .then_some(())
    })
    .await;
    let again = create_s3_channel(&client, &name, &stream).await;
    assert_ne!(again.channel_arn(), arn, "a new incarnation has a new ARN");
}

#[tokio::test]
async fn channel_requests_are_validated_as_the_service_validates_them() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("channel-src")).await;
    let create = |name: &str| {
        client
            .create_channel()
            .channel_name(name)
            .service_execution_role_arn(ROLE_ARN)
    };

    // Provisioned streams cannot feed a channel; unknown streams are not found.
    let provisioned = unique_name("provisioned");
    create_active_stream(&client, &provisioned, 1).await;
    let err = create("from-provisioned")
        .stream_configuration_list(source(
            &stream_arn(&client, &provisioned).await,
            RecordFormatType::Json,
        ))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("from-nowhere")
        .stream_configuration_list(source(
            "arn:aws:kinesis:us-east-1:000000000000:stream/missing",
            RecordFormatType::Json,
        ))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // Exactly one destination.
    let err = create("no-destination")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // Patterns and enums of the model.
    let err = client
        .create_channel()
        .channel_name("bad-role")
        .service_execution_role_arn("arn:aws:iam::123:user/someone")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("serviceExecutionRoleARN"),
        "{err:?}"
    );
    let err = create("bad/name")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    // Record formats must suit the destination: no GSR_JSON into a plain bucket, and a table
    // destination needs a schema.
    let err = create("gsr-to-s3")
        .stream_configuration_list(source(&stream, RecordFormatType::GsrJson))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("table-without-schema")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_tables_destination_configuration(s3_tables_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("freshness")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination_with_freshness(Some(0)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // Unknown and malformed channel ARNs.
    let err = client
        .describe_channel()
        .channel_arn("arn:aws:kinesis:us-east-1:000000000000:channel/nosuchchannel")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = client
        .delete_channel()
        .channel_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let err = client
        .update_channel()
        .channel_arn("arn:aws:kinesis:us-east-1:000000000000:channel/nosuchchannel")
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let listed = client.list_channels().send().await.unwrap();
    assert!(listed.channel_summaries().is_empty(), "nothing was created");
}

fn s3_tables_destination() -> S3TablesDestinationConfiguration {
    S3TablesDestinationConfiguration::builder()
        .dead_letter_queue_s3_configuration(
            DeadLetterQueueS3Configuration::builder()
                .bucket_arn(BUCKET_ARN)
                .expected_bucket_owner(BUCKET_OWNER)
                .error_output_prefix("dlq/")
                .build()
                .unwrap(),
        )
        .s3_tables_configuration_list(
            S3TablesConfiguration::builder()
                .table_bucket_arn("arn:aws:s3tables:us-east-1:123456789012:bucket/analytics")
                .namespace("events")
                .table_name("orders")
                .compression_type(S3TablesCompressionType::Zstd)
                .partition_spec(
                    PartitionSpec::builder()
                        .partition_fields(
                            PartitionField::builder()
                                .transform(PartitionTransform::TimeHour)
                                .source_name("created_at")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn channels_list_by_stream_page_and_fail_when_their_stream_is_deleted() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let first_name = unique_name("orders");
    let first = on_demand_stream(&client, &first_name).await;
    let second = on_demand_stream(&client, &unique_name("clicks")).await;

    let table = client
        .create_channel()
        .channel_name("orders-to-table")
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(
            ChannelStreamConfiguration::builder()
                .stream_arn(&first)
                .record_configuration(
                    RecordConfiguration::builder()
                        .record_format_type(RecordFormatType::GsrJson)
                        .gsr_schema_arn(
                            "arn:aws:glue:us-east-1:123456789012:schema/registry/orders",
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .s3_tables_destination_configuration(s3_tables_destination())
        .encryption_configuration(
            ChannelEncryptionConfiguration::builder()
                .encryption_type(ChannelEncryptionType::Kms)
                .key_id("alias/delivery")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    let tables = table.s3_tables_destination_configuration().unwrap();
    assert_eq!(tables.data_freshness_in_seconds(), 300);
    assert_eq!(
        tables.s3_tables_configuration_list()[0].table_name(),
        "orders"
    );
    assert_eq!(
        tables.s3_tables_configuration_list()[0]
            .partition_spec()
            .unwrap()
            .partition_fields()[0]
            .source_name(),
        "created_at"
    );
    assert_eq!(
        tables
            .dead_letter_queue_s3_configuration()
            .unwrap()
            .error_output_prefix(),
        Some("dlq/")
    );
    assert_eq!(
        table.encryption_configuration().unwrap().key_id(),
        "alias/delivery"
    );
    let to_s3 = create_s3_channel(&client, "orders-to-bucket", &first).await;
    let clicks = create_s3_channel(&client, "clicks-to-bucket", &second).await;

    // All channels, two to a page, each once.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_channels()
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.channel_summaries().len() <= 2);
        seen.extend(
            page.channel_summaries()
                .iter()
                .map(|c| c.channel_arn().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut expected = vec![
        table.channel_arn().to_owned(),
        to_s3.channel_arn().to_owned(),
        clicks.channel_arn().to_owned(),
    ];
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);

    // Filtered by source stream, with and without its creation time.
    let first_created = client
        .describe_stream_summary()
        .stream_name(&first_name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_creation_timestamp()
        .to_owned();
    let by_stream = client
        .list_channels()
        .stream_filter(StreamFilter::builder().stream_arn(&first).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = by_stream
        .channel_summaries()
        .iter()
        .map(|c| c.channel_name())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["orders-to-bucket", "orders-to-table"]);
    let summary = by_stream
        .channel_summaries()
        .iter()
        .find(|c| c.channel_name() == "orders-to-table")
        .unwrap();
    assert_eq!(
        summary.channel_destination_type(),
        &ChannelDestinationType::S3Tables
    );
    assert_eq!(summary.streams()[0].stream_arn(), first);
    let exact = client
        .list_channels()
        .stream_filter(
            StreamFilter::builder()
                .stream_arn(&first)
                .stream_creation_timestamp(first_created)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(exact.channel_summaries().len(), 2);
    let stale = client
        .list_channels()
        .stream_filter(
            StreamFilter::builder()
                .stream_arn(&first)
                .stream_creation_timestamp(DateTime::from_secs(1))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(stale.channel_summaries().is_empty());

    // A channel whose source stream is deleted has failed, and says why.
    client
        .delete_stream()
        .stream_name(&first_name)
        .send()
        .await
        .unwrap();
    let failed = wait_for_channel(&client, table.channel_arn(), ChannelStatus::Failed).await;
    assert!(
        failed
            .channel_status_reason()
            .unwrap_or_default()
            .contains(&first),
        "{failed:?}"
    );
    let err = client
        .update_channel()
        .channel_arn(table.channel_arn())
        .s3_tables_destination_configuration(
            S3TablesDestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    assert_eq!(
        describe_channel(&client, clicks.channel_arn())
            .await
            .channel_status(),
        &ChannelStatus::Active
    );
}

#[tokio::test]
async fn channels_survive_a_restart_of_a_durable_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::embedded();
        c.data_dir = Some(dir.path().to_owned());
        c
    };
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("durable-src")).await;
    let created = create_s3_channel(&client, "durable-channel", &stream).await;
    client
        .tag_resource()
        .resource_arn(created.channel_arn())
        .tags("kept", "yes")
        .send()
        .await
        .unwrap();
    let before = wait_for_channel(&client, created.channel_arn(), ChannelStatus::Active).await;
    emulator.shutdown().await;

    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let after = describe_channel(&client, created.channel_arn()).await;
    assert_eq!(after, before);
    let tags = client
        .list_tags_for_resource()
        .resource_arn(created.channel_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "kept");
}

#[tokio::test]
async fn resource_policies_belong_to_the_resource_they_name() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("policies");
    let stream = on_demand_stream(&client, &name).await;
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&stream)
        .consumer_name("reader")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_owned();
    let channel = create_s3_channel(&client, &unique_name("policy-channel"), &stream)
        .await
        .channel_arn()
        .to_owned();
    let policy_for =
        |who: &str| format!(r#"{{"Version":"2012-10-17","Statement":[],"Id":"{who}"}}"#);
    for (arn, who) in [
        (&stream, "stream"),
        (&consumer, "consumer"),
        (&channel, "channel"),
    ] {
        client
            .put_resource_policy()
            .resource_arn(arn)
            .policy(policy_for(who))
            .send()
            .await
            .unwrap();
    }
    let policy_of = |arn: String| {
        let client = client.clone();
        async move {
            client
                .get_resource_policy()
                .resource_arn(arn)
                .send()
                .await
                .unwrap()
                .policy()
                .to_owned()
        }
    };
    assert_eq!(policy_of(stream.clone()).await, policy_for("stream"));
    assert_eq!(policy_of(consumer.clone()).await, policy_for("consumer"));
    assert_eq!(policy_of(channel.clone()).await, policy_for("channel"));
    client
        .delete_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .unwrap();
    assert_eq!(policy_of(consumer.clone()).await, "{}");
    assert_eq!(policy_of(stream.clone()).await, policy_for("stream"));
    let again = client
        .delete_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(again.is_resource_not_found_exception(), "{again:?}");
}
