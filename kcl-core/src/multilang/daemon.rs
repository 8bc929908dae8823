//! The daemon's worker: a [`SchedulerBuilder`] configured from a [`MultiLangConfig`], with a
//! child process per shard.

use std::time::{Duration, SystemTime};

use super::processor::MultiLangFactory;
use super::properties::{self, MultiLangConfig};
use crate::config::{FanOutConfig, InitialPosition, LifecycleConfig, PollingConfig};
use crate::scheduler::SchedulerBuilder;

/// A scheduler builder with the daemon's settings, ready to build; the lease table is
/// `config.table_name` in `dynamodb`.
pub fn scheduler_builder(
    config: &MultiLangConfig,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
) -> SchedulerBuilder {
    let stream = config
        .stream_arn
        .clone()
        .or_else(|| config.stream_name.clone())
        .unwrap_or_default();
    let factory = MultiLangFactory::new(
        config.executable.clone(),
        config.timeout,
        config.shutdown_grace,
    );
    let polling = PollingConfig {
        max_records: i32::try_from(config.max_records).unwrap_or(i32::MAX),
        idle_time_between_reads: config.idle_time_between_reads,
        ..PollingConfig::default()
    };
    let mut lifecycle = LifecycleConfig {
        shard_sync_interval: config.shard_sync_interval,
        shutdown_timeout: config.shutdown_grace,
        ..LifecycleConfig::default()
    };
    if let Some(interval) = config.parent_shard_poll_interval {
        lifecycle.parent_poll_interval = interval;
    }
    if let Some(backoff) = config.task_backoff {
        lifecycle.restart_backoff = backoff;
    }
    let mut builder = SchedulerBuilder::new(&config.application_name, stream, kinesis, factory)
        .dynamodb(dynamodb)
        .table_name(&config.table_name)
        .initial_position(match config.initial_position {
            properties::InitialPosition::Latest => InitialPosition::Latest,
            properties::InitialPosition::TrimHorizon => InitialPosition::TrimHorizon,
            properties::InitialPosition::AtTimestamp(millis) => InitialPosition::AtTimestamp(
                SystemTime::UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64),
            ),
        })
        .lifecycle(lifecycle);
    let mut lease = kcl_lease::LeaseConfig::with_failover_time(config.failover_time);
    if let Some(max) = config.max_leases_for_worker {
        lease.max_leases_for_worker = max as usize;
    }
    lease.max_leases_to_steal_at_one_time = config.max_leases_to_steal_at_one_time as usize;
    lease.graceful_handoff = config.graceful_handoff;
    lease.graceful_handoff_timeout = config.graceful_handoff_timeout;
    lease.coordination = config.coordination.clone();
    builder = builder.lease_config(lease);
    if let Some(worker_id) = &config.worker_id {
        builder = builder.worker_id(worker_id);
    }
    match config.retrieval_mode {
        properties::RetrievalMode::Polling => builder.polling(polling),
        properties::RetrievalMode::FanOut => builder.fan_out(FanOutConfig {
            consumer_name: config.consumer_name.clone(),
            consumer_arn: config.consumer_arn.clone(),
            ..FanOutConfig::default()
        }),
    }
}
