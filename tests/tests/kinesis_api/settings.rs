//! Retention, tags, encryption, enhanced monitoring, stream mode and account limits.

use super::*;

#[tokio::test]
async fn retention_changes_are_validated() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("retention");
    create_active_stream(&client, &name, 1).await;
    client
        .increase_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
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
            .retention_period_hours(),
        48
    );
    for (hours, increase) in [(23, true), (8761, true), (24, true), (72, false)] {
        let result = if increase {
            client
                .increase_stream_retention_period()
                .stream_name(&name)
                .retention_period_hours(hours)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e.into_service_error()))
        } else {
            client
                .decrease_stream_retention_period()
                .stream_name(&name)
                .retention_period_hours(hours)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e.into_service_error()))
        };
        assert_eq!(
            result,
            Err("InvalidArgumentException".to_owned()),
            "{hours} h"
        );
    }
    client
        .decrease_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn tags_encryption_monitoring_mode_and_limits() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("settings");
    create_active_stream(&client, &name, 2).await;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    client
        .add_tags_to_stream()
        .stream_name(&name)
        .tags("team", "data")
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("owner", "me")
        .send()
        .await
        .unwrap();
    client
        .remove_tags_from_stream()
        .stream_name(&name)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["owner", "team"]);
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap()
            .tags()
            .len(),
        1
    );

    client
        .start_stream_encryption()
        .stream_name(&name)
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let put = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.encryption_type(),
        Some(&aws_sdk_kinesis::types::EncryptionType::Kms)
    );

    let monitoring = client
        .enable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(monitoring.desired_shard_level_metrics().len(), 7);
    let off = client
        .disable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    assert_eq!(off.desired_shard_level_metrics().len(), 6);

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.shard_limit(), 500);
    assert_eq!(limits.open_shard_count(), 2);
    assert_eq!(limits.on_demand_stream_count(), 1);

    client
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let policy = client
        .get_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().contains("2012-10-17"));
    client
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
}
