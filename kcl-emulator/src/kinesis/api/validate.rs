//! Checks of request members against the service model, worded as the service words its
//! `ValidationException`s, for the operations that validate whole nested shapes.

use rand::Rng as _;
use serde::Deserialize;

use crate::kinesis::model::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

pub(crate) use crate::wire::validation::{invalid, null};

pub(crate) fn required<'a, T>(value: &'a Option<T>, member: &str) -> ApiResult<&'a T> {
    value.as_ref().ok_or_else(|| null(member))
}

pub(crate) fn check_length(value: &str, min: usize, max: usize, member: &str) -> ApiResult<()> {
    let length = value.chars().count();
    if length < min || length > max {
        return Err(invalid(
            value,
            member,
            &format!("Member must have length between {min} and {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_count<T>(items: &[T], min: usize, max: usize, member: &str) -> ApiResult<()> {
    if items.len() < min || items.len() > max {
        return Err(validation::invalid_unshown(
            member,
            &format!("Member must have length between {min} and {max}"),
        ));
    }
    Ok(())
}

/// Checks `value`'s length, then that `matches` accepts it (`pattern` is what AWS reports).
pub(crate) fn check_string(
    value: &str,
    (min, max): (usize, usize),
    matches: impl Fn(&str) -> bool,
    pattern: &str,
    member: &str,
) -> ApiResult<()> {
    check_length(value, min, max, member)?;
    if !matches(value) {
        return Err(invalid(
            value,
            member,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ));
    }
    Ok(())
}

/// Checks a shard id member (`ShardId`, `ShardToSplit`, `ExclusiveStartShardId`, ...) against
/// the service model's `ShardId` shape.
pub(crate) fn check_shard_id(value: &str, member: &str) -> ApiResult<()> {
    check_string(
        value,
        (1, 128),
        |v| only(v, alnum_or(b"_.-")),
        "[a-zA-Z0-9_.-]+",
        member,
    )
}

pub(crate) fn check_enum(value: &str, allowed: &[&str], member: &str) -> ApiResult<()> {
    if !allowed.contains(&value) {
        return Err(invalid(
            value,
            member,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

pub(crate) fn only(value: &str, allowed: impl Fn(u8) -> bool) -> bool {
    !value.is_empty() && value.bytes().all(allowed)
}

pub(crate) fn lower_digit_or(extra: &'static [u8]) -> impl Fn(u8) -> bool {
    move |b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b)
}

pub(crate) fn alnum_or(extra: &'static [u8]) -> impl Fn(u8) -> bool {
    move |b| b.is_ascii_alphanumeric() || extra.contains(&b)
}

pub(crate) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `arn:aws[-a-z0-9]*:<service>:<region>:<account>:<resource>` into region, account and
/// resource, or `None` when the prefix or the service differs.
pub(crate) fn arn_fields<'a>(arn: &'a str, service: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(svc), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.bytes().all(lower_digit_or(b"-")));
    (partition_ok && svc == service).then_some((region, account, resource))
}

/// Checks a Kinesis resource ARN of `kind` (`channel`, `queue`):
/// `arn:aws.*:kinesis:.*:\d{12}:<kind>/\S+`.
pub(crate) fn check_resource_arn(arn: &str, kind: &str, member: &str) -> ApiResult<()> {
    let matches = |arn: &str| {
        arn_fields(arn, "kinesis").is_some_and(|(_, account, resource)| {
            is_account_id(account)
                && resource
                    .strip_prefix(kind)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        })
    };
    let pattern = format!(r"arn:aws.*:kinesis:.*:\d{{12}}:{kind}/\S+");
    check_string(arn, (1, 2048), matches, &pattern, member)
}

/// A resource the account holds beside its streams (a channel or a queue), found by ARN.
pub(crate) trait AccountResource: crate::kinesis::model::Registered {
    /// `channel` or `queue`: the ARN's resource type and the member name's stem.
    const KIND: &'static str;
    fn deleted(&self, now: i64) -> bool;
}

impl AccountResource for crate::kinesis::model::ChannelMeta {
    const KIND: &'static str = "channel";
    fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
}

impl AccountResource for crate::kinesis::model::QueueMeta {
    const KIND: &'static str = "queue";
    fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
}

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
    super::stream_name_from_arn(store, stream_arn)
        .and_then(|name| store.stream(&name))
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
        super::validate_range(self.max_results, 1, 10_000, "maxResults")?;
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
            after: self
                .next_token
                .as_deref()
                .map(super::decode_token)
                .transpose()?,
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
            .then(|| {
                admitted
                    .last()
                    .map(|last| super::encode_token(&arn_of(last)))
            })
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

    #[test]
    fn resource_arns_name_their_kind() {
        let arn = "arn:aws:kinesis:us-east-1:123456789012:channel/abc";
        assert!(check_resource_arn(arn, "channel", "channelARN").is_ok());
        assert!(check_resource_arn(arn, "queue", "queueARN").is_err());
        let err = check_resource_arn("queue/abc", "queue", "queueARN").unwrap_err();
        let id = new_resource_id();
        assert_eq!(id.len(), 17);
        assert!(only(&id, lower_digit_or(b"")));
        assert_ne!(id, new_resource_id());
        assert!(
            err.message.contains(r"kinesis:.*:\d{12}:queue/\S+"),
            "{}",
            err.message
        );
    }
}
