//! AddTagsToStream, RemoveTagsFromStream, ListTagsForStream and the ARN-based TagResource,
//! UntagResource, ListTagsForResource (streams, consumers, channels and queues).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::streams::Empty;
use super::{channels, queues};
use crate::kinesis::ext::channels::model::ChannelMeta;
use crate::kinesis::ext::queues::model::QueueMeta;
use crate::kinesis::model::StreamState;
use crate::kinesis::request::validate::{validate_range, validate_tags};
use crate::kinesis::request::StreamRef;
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    key: String,
    value: String,
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

/// The attributes every taggable Kinesis resource carries.
pub(super) struct ResourceAttributes<'a> {
    pub(super) tags: &'a mut BTreeMap<String, String>,
    pub(super) policy: &'a mut Option<String>,
}

/// Applies `change` to the attributes of the resource `arn` names (a stream, one of its
/// consumers, a channel or a queue). When the call `writes`, the change goes through the store,
/// which saves it (a consumer's attributes are its stream's metadata).
pub(super) fn with_resource<T>(
    store: &KinesisStore,
    arn: &str,
    writes: bool,
    change: impl FnOnce(ResourceAttributes<'_>) -> ApiResult<T>,
) -> ApiResult<T> {
    if arn.contains(":channel/") {
        let act = |channel: &mut ChannelMeta, _| {
            change(ResourceAttributes {
                tags: &mut channel.tags,
                policy: &mut channel.resource_policy,
            })
        };
        return if writes {
            channels::change_channel(store, arn, act)
        } else {
            channels::with_channel(store, arn, act)
        };
    }
    if arn.contains(":queue/") {
        let act = |queue: &mut QueueMeta, _| {
            change(ResourceAttributes {
                tags: &mut queue.tags,
                policy: &mut queue.resource_policy,
            })
        };
        return if writes {
            queues::change_queue(store, arn, act)
        } else {
            queues::with_queue(store, arn, act)
        };
    }
    let (stream, consumer_arn) = if arn.contains("/consumer/") {
        let (stream, consumer) = super::consumers::resolve_consumer_arn(store, arn)?;
        (stream, Some(consumer.arn))
    } else {
        let stream = StreamRef {
            name: None,
            arn: Some(arn.to_owned()),
        }
        .resolve(store)?;
        (stream, None)
    };
    let act = |state: &mut StreamState| {
        let settings = &mut state.settings;
        let attributes = match &consumer_arn {
            Some(consumer_arn) => {
                let entry = settings
                    .consumers
                    .iter_mut()
                    .find(|c| c.arn == *consumer_arn)
                    .ok_or_else(|| ApiError::not_found(format!("Consumer {arn} not found.")))?;
                ResourceAttributes {
                    tags: &mut entry.tags,
                    policy: &mut entry.resource_policy,
                }
            }
            None => ResourceAttributes {
                tags: &mut settings.tags,
                policy: &mut settings.resource_policy,
            },
        };
        change(attributes)
    };
    if writes {
        store.change_stream(&stream, act)
    } else {
        act(&mut stream.lock())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AddTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tags: BTreeMap<String, String>,
}

pub(crate) async fn add_tags_to_stream(
    store: &KinesisStore,
    input: AddTagsInput,
) -> ApiResult<Empty> {
    if input.tags.is_empty() || input.tags.len() > 10 {
        return Err(validation::invalid_unshown(
            "tags",
            "Member must have length between 1 and 10",
        ));
    }
    let stream = input.stream.resolve(store)?;
    store.change_stream(&stream, |state| {
        let added = input
            .tags
            .keys()
            .filter(|k| !state.settings.tags.contains_key(*k))
            .count();
        validate_tags(
            &input.tags,
            state.settings.tags.len() + added - input.tags.len(),
        )?;
        state.settings.tags.extend(input.tags);
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RemoveTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tag_keys: Vec<String>,
}

pub(crate) async fn remove_tags_from_stream(
    store: &KinesisStore,
    input: RemoveTagsInput,
) -> ApiResult<Empty> {
    let stream = input.stream.resolve(store)?;
    store.change_stream(&stream, |state| {
        for key in &input.tag_keys {
            state.settings.tags.remove(key);
        }
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsForStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsForStreamOutput {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

pub(crate) async fn list_tags_for_stream(
    store: &KinesisStore,
    input: ListTagsForStreamInput,
) -> ApiResult<ListTagsForStreamOutput> {
    validate_range(input.limit, 1, 50, "limit")?;
    let limit = input.limit.unwrap_or(50) as usize;
    let stream = input.stream.resolve(store)?;
    let state = stream.lock();
    let after: BTreeMap<String, String> = state
        .settings
        .tags
        .iter()
        .filter(|(k, _)| {
            input
                .exclusive_start_tag_key
                .as_ref()
                .is_none_or(|start| *k > start)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let page: BTreeMap<String, String> = after
        .iter()
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ListTagsForStreamOutput {
        tags: tag_list(&page),
        has_more_tags: after.len() > limit,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    tags: BTreeMap<String, String>,
}

pub(crate) async fn tag_resource(
    store: &KinesisStore,
    input: TagResourceInput,
) -> ApiResult<Empty> {
    with_resource(store, &input.resource_arn, true, |resource| {
        let tags = resource.tags;
        let added = input.tags.keys().filter(|k| !tags.contains_key(*k)).count();
        validate_tags(&input.tags, tags.len() + added - input.tags.len())?;
        tags.extend(input.tags);
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub(crate) async fn untag_resource(
    store: &KinesisStore,
    input: UntagResourceInput,
) -> ApiResult<Empty> {
    with_resource(store, &input.resource_arn, true, |resource| {
        for key in &input.tag_keys {
            resource.tags.remove(key);
        }
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsForResourceOutput {
    tags: Vec<Tag>,
}

pub(crate) async fn list_tags_for_resource(
    store: &KinesisStore,
    input: ListTagsForResourceInput,
) -> ApiResult<ListTagsForResourceOutput> {
    with_resource(store, &input.resource_arn, false, |resource| {
        Ok(ListTagsForResourceOutput {
            tags: tag_list(resource.tags),
        })
    })
}
