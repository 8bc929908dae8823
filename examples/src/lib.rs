//! Runnable examples for the Kinesis Client Library for Rust and its emulator; see `examples/`.
//! This library holds what several examples share.

/// Kinesis and DynamoDB clients: for `endpoint` (an emulator, say) with static credentials and
/// the region from `AWS_REGION` (default `us-east-1`), or without it, for AWS through the
/// default credential chain and region.
pub async fn clients(
    endpoint: Option<&str>,
) -> (aws_sdk_kinesis::Client, aws_sdk_dynamodb::Client) {
    match endpoint {
        Some(endpoint) => {
            let credentials =
                aws_sdk_kinesis::config::Credentials::new("local", "local", None, None, "static");
            let region = aws_sdk_kinesis::config::Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
            );
            let kinesis = aws_sdk_kinesis::Config::builder()
                .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
                .region(region.clone())
                .credentials_provider(credentials.clone())
                .endpoint_url(endpoint)
                .build();
            let dynamodb = aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(region)
                .credentials_provider(credentials)
                .endpoint_url(endpoint)
                .build();
            (
                aws_sdk_kinesis::Client::from_conf(kinesis),
                aws_sdk_dynamodb::Client::from_conf(dynamodb),
            )
        }
        None => {
            let config = aws_config::load_from_env().await;
            (
                aws_sdk_kinesis::Client::new(&config),
                aws_sdk_dynamodb::Client::new(&config),
            )
        }
    }
}
