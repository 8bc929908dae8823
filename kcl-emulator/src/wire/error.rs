//! Errors as the AWS services put them on the wire.
//!
//! Every error the emulator returns to a client is an [`ApiError`]: a wire type name (`__type`), an
//! HTTP status and a message. The type names and statuses live in one table ([`ErrorKind`]) so the
//! same failure is always reported the same way. Never reuse a retired kind for another meaning:
//! SDKs branch on the name.

use http::StatusCode;

/// The kinds of error the emulator reports, with their wire name and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A required resource (stream, shard, consumer, table) does not exist.
    ResourceNotFound,
    /// The resource is not in a state that allows the operation (e.g. not ACTIVE), or already exists.
    ResourceInUse,
    /// A request parameter is outside the values the service accepts.
    InvalidArgument,
    /// A request does not satisfy the API's constraints (length, range, pattern).
    Validation,
    /// A shard iterator is older than the iterator time-to-live.
    ExpiredIterator,
    /// A shard iterator could not be decoded.
    ExpiredNextToken,
    /// Per-shard throughput was exceeded (only with throughput enforcement on).
    ProvisionedThroughputExceeded,
    /// An account or stream limit was reached (shards, consumers, concurrent updates).
    LimitExceeded,
    /// The request body could not be decoded (bad JSON or CBOR, wrong types).
    Serialization,
    /// The `X-Amz-Target` header is missing or names no known operation.
    UnknownOperation,
    /// The request is larger than the configured limit.
    RequestEntityTooLarge,
    /// The HTTP method or path is not one the protocol uses.
    MissingAction,
    /// A DynamoDB condition expression evaluated to false.
    ConditionalCheckFailed,
    /// A DynamoDB transaction was cancelled; the message lists the reasons.
    TransactionCanceled,
    /// A bug or an I/O failure inside the emulator.
    InternalFailure,
}

impl ErrorKind {
    /// The `__type` name clients see (without a namespace prefix).
    pub fn wire_name(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::ExpiredIterator => "ExpiredIteratorException",
            ErrorKind::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::RequestEntityTooLarge => "RequestEntityTooLargeException",
            ErrorKind::MissingAction => "MissingAction",
            ErrorKind::ConditionalCheckFailed => "ConditionalCheckFailedException",
            ErrorKind::TransactionCanceled => "TransactionCanceledException",
            ErrorKind::InternalFailure => "InternalFailure",
        }
    }

    /// The HTTP status the real services answer this error with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error returned to a client: kind, message and, for DynamoDB, optional extra body fields
/// (`Item` on a failed condition, `CancellationReasons` on a cancelled transaction).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.wire_name())]
pub struct ApiError {
    /// Which error this is.
    pub kind: ErrorKind,
    /// The human-readable message (the `message` field of the body).
    pub message: String,
    /// Extra top-level fields merged into the error body.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            extra: None,
        }
    }

    /// Adds extra top-level body fields.
    pub fn with_extra(mut self, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra = Some(extra);
        self
    }

    /// `ResourceNotFoundException` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    /// `ResourceInUseException` with `message`.
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceInUse, message)
    }

    /// `InvalidArgumentException` with `message`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// `ValidationException` with `message`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// `SerializationException` with `message`.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Serialization, message)
    }

    /// `LimitExceededException` with `message`.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }

    /// `InternalFailure` with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InternalFailure, message)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> Self {
        ApiError::internal(format!("storage failure: {err}"))
    }
}

/// Result of an emulator operation.
pub type ApiResult<T> = Result<T, ApiError>;
