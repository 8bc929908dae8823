//! RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers, DeregisterStreamConsumer.

use super::*;

#[tokio::test]
async fn consumers_register_describe_list_and_deregister() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("consumers");
    create_active_stream(&client, &name, 1).await;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    let registered = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await
        .unwrap();
    let consumer = registered.consumer().unwrap();
    assert_eq!(
        consumer.consumer_status(),
        &aws_sdk_kinesis::types::ConsumerStatus::Creating
    );
    let consumer_arn = consumer.consumer_arn().to_owned();
    let dup = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await;
    assert_eq!(
        code(&dup.unwrap_err().into_service_error()),
        "ResourceInUseException"
    );
    kcl_integration_tests::eventually("consumer ACTIVE", || async {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .ok()?;
        (d.consumer_description()?.consumer_status()
            == &aws_sdk_kinesis::types::ConsumerStatus::Active)
            .then_some(())
    })
    .await;
    let by_name = client
        .describe_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.consumer_description().unwrap().consumer_arn(),
        consumer_arn
    );
    for i in 1..20 {
        client
            .register_stream_consumer()
            .stream_arn(&arn)
            .consumer_name(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let over = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("c20")
        .send()
        .await;
    assert_eq!(
        code(&over.unwrap_err().into_service_error()),
        "LimitExceededException"
    );
    let page = client
        .list_stream_consumers()
        .stream_arn(&arn)
        .max_results(15)
        .send()
        .await
        .unwrap();
    assert_eq!(page.consumers().len(), 15);
    let rest = client
        .list_stream_consumers()
        .stream_arn(&arn)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.consumers().len(), 5);

    let with_consumers = client.delete_stream().stream_name(&name).send().await;
    assert_eq!(
        code(&with_consumers.unwrap_err().into_service_error()),
        "ResourceInUseException"
    );
    client
        .deregister_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .unwrap();
    kcl_integration_tests::eventually("consumer gone", || async {
        client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .err()
            .map(|_| ())
    })
    .await;
    client
        .delete_stream()
        .stream_name(&name)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
}
