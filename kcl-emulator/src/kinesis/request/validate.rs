//! Checks of request members against the service model: names, ranges, lengths, patterns,
//! enums, ARNs and tags. Constraint violations are worded by `wire::validation`; this module
//! decides which constraint a Kinesis member has.

use std::collections::BTreeMap;

use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

pub(crate) use crate::wire::validation::{invalid, null};

/// Most tags a stream, consumer, channel or queue may carry.
const MAX_TAGS: usize = 50;

/// Checks a stream or consumer name: 1-128 characters of `[a-zA-Z0-9_.-]`.
pub(crate) fn validate_stream_name(name: &str) -> ApiResult<()> {
    validate_name(name, "streamName")
}

/// Checks the name of a stream, consumer, channel or queue in `member`.
pub(crate) fn validate_name(name: &str, member: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 128 {
        return Err(validation::invalid(
            name,
            member,
            "Member must have length between 1 and 128",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(validation::invalid(
            name,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// Checks that an optional integer parameter lies in `min..=max`.
pub(crate) fn validate_range(
    value: Option<i64>,
    min: i64,
    max: i64,
    member: &str,
) -> ApiResult<()> {
    match value {
        Some(v) if v < min => Err(validation::invalid(
            v,
            member,
            &format!("Member must have value greater than or equal to {min}"),
        )),
        Some(v) if v > max => Err(validation::invalid(
            v,
            member,
            &format!("Member must have value less than or equal to {max}"),
        )),
        _ => Ok(()),
    }
}

/// Checks tag keys and values, and that `existing` plus the new ones stay within the limit.
pub(crate) fn validate_tags(tags: &BTreeMap<String, String>, existing: usize) -> ApiResult<()> {
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(ApiError::invalid_argument(format!(
                "Tag key {key:?} must be between 1 and 128 characters long."
            )));
        }
        if key.starts_with("aws:") {
            return Err(ApiError::invalid_argument(format!(
                "Tag key {key} uses the reserved prefix aws:."
            )));
        }
        if value.chars().count() > 256 {
            return Err(ApiError::invalid_argument(format!(
                "Tag value for key {key} must be at most 256 characters long."
            )));
        }
    }
    if existing + tags.len() > MAX_TAGS {
        return Err(ApiError::limit_exceeded(format!(
            "Failed to add tags: a resource can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_arns_name_their_kind() {
        let arn = "arn:aws:kinesis:us-east-1:123456789012:channel/abc";
        assert!(check_resource_arn(arn, "channel", "channelARN").is_ok());
        assert!(check_resource_arn(arn, "queue", "queueARN").is_err());
        let err = check_resource_arn("queue/abc", "queue", "queueARN").unwrap_err();
        assert!(
            err.message.contains(r"kinesis:.*:\d{12}:queue/\S+"),
            "{}",
            err.message
        );
    }
}
