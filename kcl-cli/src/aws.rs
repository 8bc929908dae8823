//! AWS clients from the default chain, and SDK failures turned into messages an operator can act
//! on (missing table, rejected credentials) instead of debug dumps.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

/// Where to connect: the command line's `--endpoint` and `--region`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// One endpoint for Kinesis and DynamoDB (an emulator); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region; `None` for the default chain.
    pub region: Option<String>,
}

/// The two clients every command uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Kinesis, for shards and records.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB, for the lease table.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    /// Clients with the default credential chain, pointed at `target`.
    pub async fn connect(target: &Target) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &target.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let mut shared = loader.load().await;
        if shared.region().is_none() && target.endpoint.is_some() {
            // Emulators answer in any region, but the SDK refuses to sign without one.
            shared = shared
                .into_builder()
                .region(aws_config::Region::new("us-east-1"))
                .build();
        }
        let mut kinesis = aws_sdk_kinesis::config::Builder::from(&shared);
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&shared);
        if let Some(endpoint) = &target.endpoint {
            kinesis = kinesis.endpoint_url(endpoint);
            dynamodb = dynamodb.endpoint_url(endpoint);
        }
        Clients {
            kinesis: aws_sdk_kinesis::Client::from_conf(kinesis.build()),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
        }
    }
}

/// Error codes AWS answers with when it does not accept the caller's credentials.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "AccessDeniedException",
    "MissingAuthenticationTokenException",
];

/// What an SDK failure means for the operator: `what` is the request that failed.
pub fn explain<E, R>(what: &str, err: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err {
        let code = service.err().code().unwrap_or("unknown");
        let message = service.err().message().unwrap_or("no message");
        if CREDENTIAL_CODES.contains(&code) {
            return anyhow::anyhow!(
                "{what}: AWS rejected the credentials ({code}: {message}); check AWS_PROFILE, \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the instance role, and --region"
            );
        }
        return anyhow::anyhow!("{what}: {code}: {message}");
    }
    let detail = DisplayErrorContext(&err).to_string();
    if detail.contains("credentials") || detail.contains("Credentials") {
        return anyhow::anyhow!(
            "{what}: no usable AWS credentials ({detail}); set AWS_PROFILE or \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role is available"
        );
    }
    anyhow::anyhow!("{what}: {detail}")
}

/// Whether `err` is a service error with `code`.
pub fn has_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, code: &str) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: &str) -> SdkError<DescribeTableError, ()> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("The security token included in the request is invalid.")
            .build();
        SdkError::service_error(DescribeTableError::generic(meta), ())
    }

    #[test]
    fn rejected_credentials_say_so() {
        let text = explain(
            "reading table app",
            service_error("UnrecognizedClientException"),
        )
        .to_string();
        assert!(text.contains("AWS rejected the credentials"), "{text}");
        assert!(text.contains("UnrecognizedClientException"), "{text}");
        let other = explain("reading table app", service_error("ValidationException")).to_string();
        assert!(!other.contains("credentials"), "{other}");
    }
}
