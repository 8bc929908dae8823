//! What the actions of `api` and `ext` share in handling a request: the stream a request
//! names, paging tokens, timestamps as Kinesis writes them, limits both enforce, (in
//! [`validate`]) the checks of request members, (in [`names`]) the API's spellings of the
//! model's enums, and (in [`errors`]) how the store's errors read on the wire.
//!
//! It sits below both, so the account-level resources of `ext` validate their requests as the
//! stream actions do without depending on them.

pub(crate) mod errors;
pub(crate) mod names;
pub(crate) mod validate;

use std::sync::Arc;

use serde::Deserialize;

use crate::kinesis::model::{KinesisStore, Stream, StreamDependents};
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};
use validate::validate_stream_name;

/// Most consumers a stream may have registered at once, queues included.
pub(crate) const MAX_CONSUMERS: usize = 20;

/// The `StreamName` / `StreamARN` pair most inputs carry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamRef {
    #[serde(rename = "StreamName")]
    pub(crate) name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) arn: Option<String>,
}

impl StreamRef {
    /// Resolves the stream, by name or by ARN.
    ///
    /// # Errors
    /// `ValidationException` when neither is given or they disagree, `ResourceNotFoundException`
    /// when the stream does not exist.
    pub(crate) fn resolve<D: StreamDependents>(
        &self,
        store: &KinesisStore<D>,
    ) -> ApiResult<Arc<Stream>> {
        let name = self.name_in(store)?;
        Ok(store.stream(&name)?)
    }

    /// The stream name given directly or through the ARN, validated.
    pub(crate) fn name_in<D: StreamDependents>(
        &self,
        store: &KinesisStore<D>,
    ) -> ApiResult<String> {
        let from_arn = match &self.arn {
            Some(arn) => Some(stream_name_from_arn(store, arn)?),
            None => None,
        };
        match (&self.name, from_arn) {
            (Some(name), Some(arn_name)) if *name != arn_name => {
                Err(ApiError::invalid_argument(format!(
                    "StreamARN {} does not match StreamName {name}",
                    self.arn.as_deref().unwrap_or("")
                )))
            }
            (Some(name), _) => {
                validate_stream_name(name)?;
                Ok(name.clone())
            }
            (None, Some(arn_name)) => Ok(arn_name),
            (None, None) => Err(ApiError::validation(
                "Either StreamName or StreamARN should be provided.",
            )),
        }
    }
}

/// The stream name inside a stream ARN of this emulator's region and account.
pub(crate) fn stream_name_from_arn<D: StreamDependents>(
    store: &KinesisStore<D>,
    arn: &str,
) -> ApiResult<String> {
    let prefix = format!(
        "arn:aws:kinesis:{}:{}:stream/",
        store.config.region, store.config.account_id
    );
    let invalid = || {
        validation::invalid(arn, "streamARN", "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")
    };
    let rest = arn.strip_prefix(&prefix).ok_or_else(|| {
        if arn.starts_with("arn:aws") && arn.contains(":kinesis:") {
            store.stream_not_found(arn).into()
        } else {
            invalid()
        }
    })?;
    let name = rest.split('/').next().unwrap_or_default();
    validate_stream_name(name).map_err(|_| invalid())?;
    Ok(name.to_owned())
}

/// Seconds since the epoch, as Kinesis JSON timestamps are written.
pub(crate) fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// An opaque paging token: base64 of a small JSON document.
pub(crate) fn encode_token<T: serde::Serialize>(value: &T) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(value).expect("tokens always serialize"))
}

/// Decodes a token made by [`encode_token`].
///
/// # Errors
/// `InvalidArgumentException` when the token was not made here.
pub(crate) fn decode_token<T: serde::de::DeserializeOwned>(token: &str) -> ApiResult<T> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid NextToken: {token}")))
}
