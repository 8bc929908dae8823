//! RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers,
//! DeregisterStreamConsumer.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kinesis::model::{ConsumerMeta, Stream};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::{validate_name, validate_range, validate_tags};
use crate::kinesis::request::{
    decode_token, encode_token, epoch_seconds, StreamRef, MAX_CONSUMERS,
};
use crate::kinesis::KinesisStore;
use crate::wire::{ApiError, ApiResult};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConsumerOutput {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: f64,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    stream_arn: Option<String>,
}

fn consumer_output(consumer: &ConsumerMeta, stream_arn: Option<&str>, now: i64) -> ConsumerOutput {
    ConsumerOutput {
        consumer_name: consumer.name.clone(),
        consumer_arn: consumer.arn.clone(),
        consumer_status: consumer.status(now).wire_name(),
        consumer_creation_timestamp: epoch_seconds(consumer.created_ms),
        stream_arn: stream_arn.map(str::to_owned),
    }
}

/// The stream and consumer name a consumer ARN names:
/// `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<epoch>`.
pub(crate) fn resolve_consumer_arn(
    store: &KinesisStore,
    arn: &str,
) -> ApiResult<(Arc<Stream>, ConsumerMeta)> {
    let not_found = || ApiError::not_found(format!("Consumer {arn} not found."));
    let (stream_arn, _) = arn
        .split_once("/consumer/")
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid ConsumerARN {arn}")))?;
    let stream = StreamRef {
        name: None,
        arn: Some(stream_arn.to_owned()),
    }
    .resolve(store)
    .map_err(|_| not_found())?;
    let now = store.now_ms();
    let consumer = stream
        .lock()
        .settings
        .consumers
        .iter()
        .find(|c| c.arn == arn && !c.deleted(now))
        .cloned()
        .ok_or_else(not_found)?;
    Ok((stream, consumer))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RegisterInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    consumer_name: String,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RegisterOutput {
    consumer: ConsumerOutput,
}

pub(crate) async fn register(
    store: &KinesisStore,
    input: RegisterInput,
) -> ApiResult<RegisterOutput> {
    validate_name(&input.consumer_name, "consumerName")?;
    let tags = input.tags.unwrap_or_default();
    validate_tags(&tags, 0)?;
    let stream = StreamRef {
        name: None,
        arn: Some(input.stream_arn),
    }
    .resolve(store)?;
    let now = store.now_ms();
    // Queues share the stream's registered-consumer limit: they are counted under the same
    // locks as the consumer is added, so a queue created meanwhile is counted.
    let output = store.change_stream_counting_readers(&stream, |state, queues| {
        state.settings.consumers.retain(|c| !c.deleted(now));
        if state
            .settings
            .consumers
            .iter()
            .any(|c| c.name == input.consumer_name)
        {
            return Err(ApiError::in_use(format!(
                "Consumer {} under stream {} already exists for account {}.",
                input.consumer_name, stream.name, store.config.account_id
            )));
        }
        if state.settings.consumers.len() + queues >= MAX_CONSUMERS {
            return Err(ApiError::limit_exceeded(format!(
                "Consumer limit of {MAX_CONSUMERS} reached for stream {}.",
                stream.name
            )));
        }
        let consumer = ConsumerMeta {
            arn: format!(
                "{}/consumer/{}:{}",
                stream.arn,
                input.consumer_name,
                now / 1000
            ),
            name: input.consumer_name,
            created_ms: now,
            creating_until: now + store.config.create_delay.as_millis() as i64,
            deleting_until: None,
            tags,
            resource_policy: None,
        };
        let output = consumer_output(&consumer, None, store.now_ms());
        state.settings.consumers.push(consumer);
        Ok(output)
    })?;
    Ok(RegisterOutput { consumer: output })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConsumerRef {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

impl ConsumerRef {
    fn resolve(&self, store: &KinesisStore) -> ApiResult<(Arc<Stream>, ConsumerMeta)> {
        match (&self.consumer_arn, &self.stream_arn, &self.consumer_name) {
            (Some(arn), _, _) => resolve_consumer_arn(store, arn),
            (None, Some(stream_arn), Some(name)) => {
                let stream = StreamRef {
                    name: None,
                    arn: Some(stream_arn.clone()),
                }
                .resolve(store)?;
                let now = store.now_ms();
                let consumer = stream
                    .lock()
                    .settings
                    .consumers
                    .iter()
                    .find(|c| c.name == *name && !c.deleted(now))
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::not_found(format!(
                            "Consumer {name} under stream {} not found.",
                            stream.name
                        ))
                    })?;
                Ok((stream, consumer))
            }
            _ => Err(ApiError::invalid_argument(
                "Either ConsumerARN or both StreamARN and ConsumerName must be provided.",
            )),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeOutput {
    consumer_description: ConsumerOutput,
}

pub(crate) async fn describe(
    store: &KinesisStore,
    input: ConsumerRef,
) -> ApiResult<DescribeOutput> {
    let (stream, consumer) = input.resolve(store)?;
    Ok(DescribeOutput {
        consumer_description: consumer_output(&consumer, Some(&stream.arn), store.now_ms()),
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct DeregisterOutput {}

pub(crate) async fn deregister(
    store: &KinesisStore,
    input: ConsumerRef,
) -> ApiResult<DeregisterOutput> {
    let (stream, consumer) = input.resolve(store)?;
    store.change_stream(&stream, |state| -> ApiResult<()> {
        let now = store.now_ms();
        if let Some(entry) = state
            .settings
            .consumers
            .iter_mut()
            .find(|c| c.arn == consumer.arn)
        {
            if entry.deleting_until.is_none() {
                entry.deleting_until = Some(now + store.config.delete_delay.as_millis() as i64);
            }
        }
        Ok(())
    })?;
    Ok(DeregisterOutput {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListOutput {
    consumers: Vec<ConsumerOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub(crate) async fn list(store: &KinesisStore, input: ListInput) -> ApiResult<ListOutput> {
    validate_range(input.max_results, 1, 10_000, "maxResults")?;
    let limit = input.max_results.unwrap_or(100) as usize;
    let stream = StreamRef {
        name: None,
        arn: Some(input.stream_arn),
    }
    .resolve(store)?;
    let skip = match &input.next_token {
        Some(token) => decode_token::<usize>(token)?,
        None => 0,
    };
    let now = store.now_ms();
    let state = stream.lock();
    let live: Vec<&ConsumerMeta> = state
        .settings
        .consumers
        .iter()
        .filter(|c| !c.deleted(now))
        .collect();
    let page = live
        .iter()
        .skip(skip)
        .take(limit)
        .map(|c| consumer_output(c, None, now))
        .collect();
    let next_token = (live.len() > skip + limit).then(|| encode_token(&(skip + limit)));
    Ok(ListOutput {
        consumers: page,
        next_token,
    })
}
