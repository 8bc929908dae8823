//! Finding and listing the account's channels and queues: by ARN under their registry's lock,
//! and page by page filtered by the streams they read.

use rand::Rng as _;
use serde::Deserialize;

use super::resources::AccountResource;
use crate::kinesis::request::validate::{
    check_count, check_resource_arn, required, validate_range,
};
use crate::kinesis::request::{decode_token, encode_token, stream_name_from_arn};
use crate::kinesis::KinesisStore;
use crate::wire::{ApiError, ApiResult};

/// `ResourceNotFoundException` for the `R` that `arn` names.
pub(crate) fn not_found<R: AccountResource>(store: &KinesisStore, arn: &str) -> ApiError {
    let mut kind = R::KIND.to_owned();
    kind[..1].make_ascii_uppercase();
    ApiError::not_found(format!(
        "{kind} {arn} under account {} not found.",
        store.config.account_id
    ))
}

/// Runs `act` on the resource of `registry` (a list the store holds locked) that `arn` names,
/// unless its deletion has completed, with the time it read. The lock is held throughout, so
/// `act` must not save metadata or look up streams.
///
/// # Errors
/// `ValidationException` for a malformed ARN, `ResourceNotFoundException` for an unknown
/// resource, or what `act` returns.
pub(crate) fn with_live<R: AccountResource, T>(
    store: &KinesisStore,
    registry: &mut [R],
    arn: &str,
    act: impl FnOnce(&mut R, i64) -> ApiResult<T>,
) -> ApiResult<T> {
    check_resource_arn(arn, R::KIND, &format!("{}ARN", R::KIND))?;
    let now = store.now_ms();
    match registry
        .iter_mut()
        .find(|r| r.arn() == arn && !r.deleted(now))
    {
        Some(resource) => act(resource, now),
        None => Err(not_found::<R>(store, arn)),
    }
}

/// Whether the stream `stream_arn` still exists as the incarnation created at `created_ms`
/// (a stream deleted and created again under its name is another stream).
pub(crate) fn source_is_live(store: &KinesisStore, stream_arn: &str, created_ms: i64) -> bool {
    stream_name_from_arn(store, stream_arn)
        .and_then(|name| Ok(store.stream(&name)?))
        .is_ok_and(|stream| stream.lock().settings.created_ms == created_ms)
}

/// One `StreamFilter` entry of ListChannels and ListQueues.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamFilter {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    stream_creation_timestamp: Option<f64>,
}

impl StreamFilter {
    /// Whether a resource reading the stream `stream_arn`, created at `created_ms`, matches.
    pub(crate) fn matches(&self, stream_arn: &str, created_ms: i64) -> bool {
        self.stream_arn.as_deref() == Some(stream_arn)
            && self
                .stream_creation_timestamp
                .is_none_or(|seconds| (seconds * 1000.0).round() as i64 == created_ms)
    }
}

/// The input of ListChannels and ListQueues: a stream filter and paging by resource ARN.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListByStreamInput {
    stream_filter: Option<Vec<StreamFilter>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// A checked [`ListByStreamInput`].
#[derive(Debug)]
pub(crate) struct ListByStream {
    filters: Option<Vec<StreamFilter>>,
    limit: usize,
    after: Option<String>,
}

impl ListByStreamInput {
    /// Checks the input; pages hold at most `page_limit` entries whatever `MaxResults` asks.
    pub(crate) fn check(self, page_limit: usize) -> ApiResult<ListByStream> {
        validate_range(self.max_results, 1, 10_000, "maxResults")?;
        if let Some(filters) = &self.stream_filter {
            check_count(filters, 1, 10_000, "streamFilter")?;
            for (at, filter) in filters.iter().enumerate() {
                required(
                    &filter.stream_arn,
                    &format!("streamFilter.{}.member.streamARN", at + 1),
                )?;
            }
        }
        Ok(ListByStream {
            filters: self.stream_filter,
            limit: self
                .max_results
                .map_or(page_limit, |n| (n as usize).min(page_limit)),
            after: self.next_token.as_deref().map(decode_token).transpose()?,
        })
    }
}

impl ListByStream {
    /// Whether a resource at `arn` reading `sources` (stream ARN, stream creation time)
    /// belongs on this page or a later one.
    pub(crate) fn admits<'a>(
        &self,
        arn: &str,
        mut sources: impl Iterator<Item = (&'a str, i64)>,
    ) -> bool {
        self.after.as_ref().is_none_or(|last| arn > last.as_str())
            && self.filters.as_ref().is_none_or(|filters| {
                sources.any(|(stream_arn, created_ms)| {
                    filters.iter().any(|f| f.matches(stream_arn, created_ms))
                })
            })
    }

    /// The page of `admitted` (sorted by ARN) and the token for the next one. Pages continue
    /// after the last ARN returned, so resources created or deleted between calls neither
    /// repeat nor shift the pages.
    pub(crate) fn page<T>(
        &self,
        mut admitted: Vec<T>,
        arn_of: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Option<String>) {
        admitted.sort_by(|a, b| arn_of(a).cmp(arn_of(b)));
        let more = admitted.len() > self.limit;
        admitted.truncate(self.limit);
        let next_token = more
            .then(|| admitted.last().map(|last| encode_token(&arn_of(last))))
            .flatten();
        (admitted, next_token)
    }
}

/// A new resource id for a channel or queue ARN: 17 lowercase letters and digits, as the
/// service's ids look (and a valid host label, as the SDKs' endpoint rules require).
pub(crate) fn new_resource_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..17)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::request::validate::{lower_digit_or, only};

    #[test]
    fn resource_ids_look_like_the_services() {
        let id = new_resource_id();
        assert_eq!(id.len(), 17);
        assert!(only(&id, lower_digit_or(b"")));
        assert_ne!(id, new_resource_id());
    }
}
