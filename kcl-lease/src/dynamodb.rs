//! The lease table in DynamoDB, through `aws-sdk-dynamodb`, in the Java KCL's schema.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType, TableStatus,
};

use crate::backoff::{retry, BackoffConfig};
use crate::entities::{
    LeaderLock, MigrationState, TableSnapshot, WorkerMetrics, ENTITY_WORKER_METRICS, LEADER_KEY,
    MIGRATION_KEY,
};
use crate::error::{LeaseError, Result};
use crate::lease::Lease;
use crate::store::{heartbeat_base, CheckpointUpdate, LeaseStore};

/// The GSI the Java KCL 3 adds to find a worker's leases without a scan.
pub const OWNER_INDEX: &str = "LeaseOwnerToLeaseKeyIndex";

/// How the table is billed when this library creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BillingModeConfig {
    /// On-demand capacity (the default).
    PayPerRequest,
    /// Provisioned read and write capacity units.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
}

/// Settings of the DynamoDB lease table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableConfig {
    /// Create the table when it does not exist. Default `true`.
    pub create_if_missing: bool,
    /// Billing of a created table. Default pay-per-request.
    pub billing: BillingModeConfig,
    /// Create the `LeaseOwnerToLeaseKeyIndex` GSI with the table, or add it (UpdateTable) to
    /// an existing table without it, as the Java KCL 3 does. Default `true`.
    pub owner_index: bool,
    /// How long to wait for a created table to become ACTIVE. Default 2 minutes.
    pub active_timeout: Duration,
    /// The longest one call to the table may take, retries within the SDK included; a call
    /// on a connection that went silent then fails (retryably) instead of hanging, since the
    /// SDK sets no read timeout of its own. Applied as the operation timeout of the store's
    /// client unless that client's configuration sets one. Default 1 minute, as the Java
    /// KCL's `dynamoDbRequestTimeout`.
    pub request_timeout: Duration,
    /// Retries of throttled or failed requests.
    pub backoff: BackoffConfig,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            create_if_missing: true,
            billing: BillingModeConfig::PayPerRequest,
            owner_index: true,
            active_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
            backoff: BackoffConfig::default(),
        }
    }
}

/// The lease table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbLeaseStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    config: TableConfig,
}

/// Turns an SDK failure into a [`LeaseError`]: throttling and transport trouble are retryable.
fn sdk_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    operation: &'static str,
    err: SdkError<E, R>,
) -> LeaseError {
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "LimitExceededException"
            )
        ),
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("unknown"),
            service.err().message().unwrap_or("no message")
        ),
        other => format!("{other:?}"),
    };
    LeaseError::Store {
        operation,
        message,
        retryable,
    }
}

/// For conditional writes: a failed condition is an answer (`Ok(false)`), not an error.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    operation: &'static str,
    err: SdkError<E, R>,
) -> Result<bool> {
    if let SdkError::ServiceError(service) = &err {
        if service.err().code() == Some("ConditionalCheckFailedException") {
            return Ok(false);
        }
    }
    Err(sdk_error(operation, err))
}

/// `client`, or a client like it whose operations time out after `timeout` when its own
/// configuration sets no operation timeout.
fn with_operation_timeout(
    client: aws_sdk_dynamodb::Client,
    timeout: Duration,
) -> aws_sdk_dynamodb::Client {
    let config = client.config();
    let current = config.timeout_config();
    if current.is_some_and(|timeouts| timeouts.operation_timeout().is_some()) {
        return client;
    }
    let timeouts = current
        .map(TimeoutConfig::to_builder)
        .unwrap_or_default()
        .operation_timeout(timeout)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config.to_builder().timeout_config(timeouts).build())
}

/// How often to look whether an index being added is ACTIVE yet.
const OWNER_INDEX_POLL: Duration = Duration::from_millis(500);

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type set")
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl DynamoDbLeaseStore {
    /// A store for table `table` through `client`, each call bounded by
    /// [`TableConfig::request_timeout`] unless the client sets an operation timeout itself.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        config: TableConfig,
    ) -> DynamoDbLeaseStore {
        DynamoDbLeaseStore {
            client: with_operation_timeout(client, config.request_timeout),
            table: table.into(),
            config,
        }
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    fn key(lease_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("leaseKey".to_owned(), s(lease_key))])
    }

    /// A conditional update of `lease_key`; `Ok(false)` when the condition fails.
    async fn conditional_update(
        &self,
        operation: &'static str,
        lease_key: &str,
        condition: &str,
        update: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool> {
        retry(&self.config.backoff, || async {
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(lease_key)))
                .condition_expression(condition)
                .update_expression(update);
            if !values.is_empty() {
                request = request.set_expression_attribute_values(Some(values.clone()));
            }
            match request.send().await {
                Ok(_) => Ok(true),
                Err(err) => classify(operation, err),
            }
        })
        .await
    }

    /// The condition and values that `lease`'s owner is still the owner.
    fn owner_condition(
        lease: &Lease,
        values: &mut HashMap<String, AttributeValue>,
    ) -> &'static str {
        match &lease.lease_owner {
            Some(owner) => {
                values.insert(":owner".to_owned(), s(owner));
                "leaseOwner = :owner"
            }
            None => "attribute_not_exists(leaseOwner)",
        }
    }

    /// The condition that a lease's `leaseOwner` and `checkpointOwner` are still as in
    /// `lease` and that it exists: what the leader's writes are conditioned on.
    fn owners_condition(lease: &Lease, values: &mut HashMap<String, AttributeValue>) -> String {
        let owner = Self::owner_condition(lease, values);
        let checkpoint_owner = match &lease.checkpoint_owner {
            Some(checkpoint_owner) => {
                values.insert(":checkpoint_owner".to_owned(), s(checkpoint_owner));
                "checkpointOwner = :checkpoint_owner"
            }
            None => "attribute_not_exists(checkpointOwner)",
        };
        format!("attribute_exists(leaseKey) AND {owner} AND {checkpoint_owner}")
    }

    /// A conditional put; `Ok(false)` when the condition fails.
    async fn conditional_put(
        &self,
        operation: &'static str,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool> {
        retry(&self.config.backoff, || async {
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(condition);
            if !values.is_empty() {
                request = request.set_expression_attribute_values(Some(values.clone()));
            }
            match request.send().await {
                Ok(_) => Ok(true),
                Err(err) => classify(operation, err),
            }
        })
        .await
    }

    /// A conditional delete; `Ok(false)` when the condition fails.
    async fn conditional_delete(
        &self,
        operation: &'static str,
        key: &str,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool> {
        retry(&self.config.backoff, || async {
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(key)))
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(err) => classify(operation, err),
            }
        })
        .await
    }

    /// One item, read consistently.
    async fn get_item(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>> {
        let out = retry(&self.config.backoff, || async {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|err| sdk_error(operation, err))
        })
        .await?;
        Ok(out.item)
    }

    /// The keys of `owner`'s leases by a scan, for a table without the owner index.
    async fn scan_keys_of_owner(&self, owner: &str) -> Result<Vec<String>> {
        Ok(self
            .list_leases()
            .await?
            .into_iter()
            .filter(|lease| lease.lease_owner.as_deref() == Some(owner))
            .map(|lease| lease.lease_key)
            .collect())
    }

    /// Adds the owner index to an existing table that lacks it (one made by a 2.x worker or
    /// with `owner_index` off), as the Java KCL 3 does, and waits for it to become ACTIVE
    /// within `active_timeout`. Until it is, [`LeaseStore::lease_keys_of_owner`] scans, so a
    /// slow backfill is logged, not an error.
    async fn ensure_owner_index(&self) -> Result<()> {
        if !self.config.owner_index {
            return Ok(());
        }
        let described = self.describe().await?;
        let Some(table) = described.table() else {
            return Ok(());
        };
        if table
            .global_secondary_indexes()
            .iter()
            .any(|index| index.index_name() == Some(OWNER_INDEX))
        {
            return self.wait_owner_index_active().await;
        }
        // A provisioned table's indexes need capacities of their own: the table's.
        let throughput = match table
            .billing_mode_summary()
            .and_then(|summary| summary.billing_mode())
        {
            Some(BillingMode::PayPerRequest) => None,
            _ => table.provisioned_throughput().and_then(|current| {
                match (
                    current.read_capacity_units(),
                    current.write_capacity_units(),
                ) {
                    (Some(read), Some(write)) if read > 0 && write > 0 => Some(
                        ProvisionedThroughput::builder()
                            .read_capacity_units(read)
                            .write_capacity_units(write)
                            .build()
                            .expect("capacities set"),
                    ),
                    _ => None,
                }
            }),
        };
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(OWNER_INDEX)
            .key_schema(key_element("leaseOwner", KeyType::Hash))
            .key_schema(key_element("leaseKey", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .set_provisioned_throughput(throughput)
            .build()
            .expect("index name and keys set");
        let added = self
            .client
            .update_table()
            .table_name(&self.table)
            .attribute_definitions(string_attribute("leaseKey"))
            .attribute_definitions(string_attribute("leaseOwner"))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await;
        match added {
            Ok(_) => {
                tracing::info!(table = %self.table, index = OWNER_INDEX, "adding the owner index")
            }
            // Another worker is adding it (the table is UPDATING, or the index exists now).
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_resource_in_use_exception()
                        || (e.code() == Some("ValidationException")
                            && e.message().is_some_and(|m| m.contains("already exists")))
                }) => {}
            Err(err) => return Err(sdk_error("update_table", err)),
        }
        self.wait_owner_index_active().await
    }

    /// DescribeTable of the lease table.
    async fn describe(
        &self,
    ) -> Result<aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|err| sdk_error("describe_table", err))
    }

    /// The owner index's status: `None` when the table has no such index.
    async fn owner_index_status(&self) -> Result<Option<IndexStatus>> {
        Ok(self
            .describe()
            .await?
            .table()
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .find(|index| index.index_name() == Some(OWNER_INDEX))
            .and_then(|index| index.index_status().cloned()))
    }

    /// Waits for the owner index to be ACTIVE, at most `active_timeout`.
    async fn wait_owner_index_active(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.config.active_timeout;
        loop {
            let status = self.owner_index_status().await?;
            if status.is_none() || status == Some(IndexStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    table = %self.table,
                    index = OWNER_INDEX,
                    status = ?status,
                    "the owner index is not ACTIVE yet; finding a worker's leases by scanning until it is"
                );
                return Ok(());
            }
            tokio::time::sleep(OWNER_INDEX_POLL).await;
        }
    }

    async fn wait_active(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.config.active_timeout;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await;
            match described {
                Ok(out)
                    if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) =>
                {
                    return Ok(())
                }
                Ok(_) => {}
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                Err(err) => return Err(sdk_error("describe_table", err)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LeaseError::Store {
                    operation: "describe_table",
                    message: format!("table {} did not become ACTIVE", self.table),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoDbLeaseStore {
    async fn initialize(&self) -> Result<()> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        match described {
            Ok(_) => {
                self.wait_active().await?;
                return self.ensure_owner_index().await;
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(err) => return Err(sdk_error("describe_table", err)),
        }
        if !self.config.create_if_missing {
            return Err(LeaseError::TableMissing(self.table.clone()));
        }
        let key = key_element;
        let attribute = string_attribute;
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .key_schema(key("leaseKey", KeyType::Hash))
            .attribute_definitions(attribute("leaseKey"));
        let throughput = match self.config.billing {
            BillingModeConfig::PayPerRequest => {
                request = request.billing_mode(BillingMode::PayPerRequest);
                None
            }
            BillingModeConfig::Provisioned { read, write } => {
                let throughput = ProvisionedThroughput::builder()
                    .read_capacity_units(read)
                    .write_capacity_units(write)
                    .build()
                    .expect("capacities set");
                request = request
                    .billing_mode(BillingMode::Provisioned)
                    .provisioned_throughput(throughput.clone());
                Some(throughput)
            }
        };
        if self.config.owner_index {
            let index = GlobalSecondaryIndex::builder()
                .index_name(OWNER_INDEX)
                .key_schema(key("leaseOwner", KeyType::Hash))
                .key_schema(key("leaseKey", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .set_provisioned_throughput(throughput)
                .build()
                .expect("index name and keys set");
            request = request
                .attribute_definitions(attribute("leaseOwner"))
                .global_secondary_indexes(index);
        }
        match request.send().await {
            Ok(_) => tracing::info!(table = %self.table, "created the lease table"),
            // Another worker created it first: fine, wait for it like we would for ours.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => return Err(sdk_error("create_table", err)),
        }
        self.wait_active().await
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        retry(&self.config.backoff, || async {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(lease.to_item()))
                .condition_expression("attribute_not_exists(leaseKey)")
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(err) => classify("create_lease", err),
            }
        })
        .await
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = retry(&self.config.backoff, || async {
                self.client
                    .scan()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|err| sdk_error("list_leases", err))
            })
            .await?;
            for item in page.items().iter().filter(|i| Lease::is_lease_item(i)) {
                leases.push(Lease::from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(leases),
            }
        }
    }

    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>> {
        let out = retry(&self.config.backoff, || async {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(lease_key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|err| sdk_error("get_lease", err))
        })
        .await?;
        out.item()
            .filter(|item| Lease::is_lease_item(item))
            .map(Lease::from_item)
            .transpose()
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        let mut values = HashMap::from([
            (":counter".to_owned(), n(lease.lease_counter)),
            (":next".to_owned(), n(lease.lease_counter + 1)),
        ]);
        let owner = Self::owner_condition(lease, &mut values);
        let condition = format!("leaseCounter = :counter AND {owner}");
        let update = match lease.throughput_kbps {
            Some(kbps) => {
                values.insert(
                    ":throughput".to_owned(),
                    AttributeValue::N(kbps.to_string()),
                );
                "SET leaseCounter = :next, throughputKBps = :throughput"
            }
            None => "SET leaseCounter = :next",
        };
        self.conditional_update("renew", &lease.lease_key, &condition, update, values)
            .await
    }

    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        let switches = lease.owner_switches_since_checkpoint
            + u64::from(lease.lease_owner.as_deref() != Some(new_owner));
        let values = HashMap::from([
            (":counter".to_owned(), n(lease.lease_counter)),
            (":next".to_owned(), n(lease.lease_counter + 1)),
            (":new_owner".to_owned(), s(new_owner)),
            (":switches".to_owned(), n(switches)),
        ]);
        self.conditional_update(
            "take",
            &lease.lease_key,
            "leaseCounter = :counter",
            "SET leaseOwner = :new_owner, leaseCounter = :next, ownerSwitchesSinceCheckpoint = :switches REMOVE checkpointOwner",
            values,
        )
        .await
    }

    async fn evict_lease(&self, lease: &Lease) -> Result<bool> {
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        let owner = Self::owner_condition(lease, &mut values);
        self.conditional_update(
            "evict",
            &lease.lease_key,
            owner,
            "REMOVE leaseOwner SET leaseCounter = leaseCounter + :one",
            values,
        )
        .await
    }

    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        let Some(owner) = &lease.lease_owner else {
            return Ok(false);
        };
        let values = HashMap::from([
            (":owner".to_owned(), s(owner)),
            (":new_owner".to_owned(), s(new_owner)),
        ]);
        self.conditional_update(
            "start_handoff",
            &lease.lease_key,
            "leaseOwner = :owner AND attribute_not_exists(checkpointOwner)",
            "SET leaseOwner = :new_owner, checkpointOwner = :owner",
            values,
        )
        .await
    }

    async fn complete_handoff(&self, lease: &Lease) -> Result<bool> {
        let Some(checkpoint_owner) = &lease.checkpoint_owner else {
            return Ok(false);
        };
        let values = HashMap::from([
            (":counter".to_owned(), n(lease.lease_counter)),
            (":next".to_owned(), n(lease.lease_counter + 1)),
            (":checkpoint_owner".to_owned(), s(checkpoint_owner)),
            (
                ":switches".to_owned(),
                n(lease.owner_switches_since_checkpoint + 1),
            ),
        ]);
        self.conditional_update(
            "complete_handoff",
            &lease.lease_key,
            "leaseCounter = :counter AND checkpointOwner = :checkpoint_owner",
            "SET leaseCounter = :next, ownerSwitchesSinceCheckpoint = :switches REMOVE checkpointOwner",
            values,
        )
        .await
    }

    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool> {
        let mut values = HashMap::from([
            (":counter".to_owned(), n(lease.lease_counter)),
            (":next".to_owned(), n(lease.lease_counter + 1)),
            (
                ":checkpoint".to_owned(),
                s(&update.checkpoint.sequence_number),
            ),
            (":sub".to_owned(), n(update.checkpoint.sub_sequence_number)),
            (":zero".to_owned(), n(0)),
        ]);
        let owner = Self::owner_condition(lease, &mut values);
        let condition = format!("leaseCounter = :counter AND {owner}");
        let mut set = vec![
            "leaseCounter = :next",
            "checkpoint = :checkpoint",
            "checkpointSubSequenceNumber = :sub",
            "ownerSwitchesSinceCheckpoint = :zero",
        ];
        let mut remove = Vec::new();
        match &update.pending_checkpoint {
            Some(pending) => {
                values.insert(":pending".to_owned(), s(&pending.sequence_number));
                values.insert(":pending_sub".to_owned(), n(pending.sub_sequence_number));
                set.push("pendingCheckpoint = :pending");
                set.push("pendingCheckpointSubSequenceNumber = :pending_sub");
            }
            None => remove.extend(["pendingCheckpoint", "pendingCheckpointSubSequenceNumber"]),
        }
        match &update.pending_checkpoint_state {
            Some(state) => {
                values.insert(":state".to_owned(), AttributeValue::B(state.clone().into()));
                set.push("pendingCheckpointState = :state");
            }
            None => remove.push("pendingCheckpointState"),
        }
        if let Some(kbps) = lease.throughput_kbps {
            values.insert(
                ":throughput".to_owned(),
                AttributeValue::N(kbps.to_string()),
            );
            set.push("throughputKBps = :throughput");
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        self.conditional_update(
            "checkpoint",
            &lease.lease_key,
            &condition,
            &expression,
            values,
        )
        .await
    }

    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool> {
        if child_shard_ids.is_empty() {
            return Ok(true);
        }
        let values = HashMap::from([(
            ":children".to_owned(),
            AttributeValue::Ss(child_shard_ids.iter().cloned().collect()),
        )]);
        self.conditional_update(
            "update_children",
            lease_key,
            "attribute_exists(leaseKey)",
            "ADD childShardIds :children",
            values,
        )
        .await
    }

    async fn delete_lease(&self, lease_key: &str) -> Result<()> {
        retry(&self.config.backoff, || async {
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(lease_key)))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(err) => Err(sdk_error("delete_lease", err)),
            }
        })
        .await
    }
    async fn scan_table(&self) -> Result<TableSnapshot> {
        let mut snapshot = TableSnapshot::default();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            // Eventually consistent, as Java's leader scans: every decision taken from it is
            // a conditional write, and it costs half the read units of a consistent scan.
            let page = retry(&self.config.backoff, || async {
                self.client
                    .scan()
                    .table_name(&self.table)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|err| sdk_error("scan_table", err))
            })
            .await?;
            for item in page.items() {
                snapshot.add_item(item)?;
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(snapshot),
            }
        }
    }

    async fn owner_index_ready(&self) -> Result<bool> {
        Ok(self.owner_index_status().await? == Some(IndexStatus::Active))
    }

    async fn lease_keys_of_owner(&self, owner: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = retry(&self.config.backoff, || async {
                self.client
                    .query()
                    .table_name(&self.table)
                    .index_name(OWNER_INDEX)
                    .key_condition_expression("leaseOwner = :owner")
                    .expression_attribute_values(":owner", s(owner))
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|err| sdk_error("lease_keys_of_owner", err))
            })
            .await;
            let page = match page {
                Ok(page) => page,
                // A table created without the index (by a 2.x worker, or with `owner_index`
                // off) answers a query on it with a ValidationException (DynamoDB; moto says
                // ResourceNotFoundException, naming the index): the same answer then comes
                // from a scan.
                Err(LeaseError::Store { message, .. })
                    if keys.is_empty()
                        && (message.starts_with("ValidationException")
                            || (message.starts_with("ResourceNotFoundException")
                                && message.contains(OWNER_INDEX))) =>
                {
                    tracing::debug!(table = %self.table, error = %message, "no owner index; scanning instead");
                    return self.scan_keys_of_owner(owner).await;
                }
                Err(err) => return Err(err),
            };
            keys.extend(
                page.items()
                    .iter()
                    .filter_map(|item| item.get("leaseKey")?.as_s().ok().cloned()),
            );
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(keys),
            }
        }
    }

    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        let mut values = HashMap::from([
            (":new_owner".to_owned(), s(new_owner)),
            (":one".to_owned(), n(1)),
        ]);
        let condition = Self::owners_condition(lease, &mut values);
        let switches = lease.lease_owner.as_deref() != Some(new_owner)
            || lease.checkpoint_owner.as_deref() == Some(new_owner);
        let update = if switches {
            "SET leaseOwner = :new_owner REMOVE checkpointOwner ADD leaseCounter :one, ownerSwitchesSinceCheckpoint :one"
        } else {
            "SET leaseOwner = :new_owner REMOVE checkpointOwner ADD leaseCounter :one"
        };
        self.conditional_update("assign", &lease.lease_key, &condition, update, values)
            .await
    }

    async fn unassign_lease(&self, lease: &Lease) -> Result<bool> {
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        let condition = Self::owners_condition(lease, &mut values);
        // During a handoff the next owner keeps `leaseOwner`: only the handoff is ended.
        let update = if lease.checkpoint_owner.is_some() {
            "REMOVE checkpointOwner ADD leaseCounter :one"
        } else {
            "REMOVE leaseOwner, checkpointOwner ADD leaseCounter :one"
        };
        self.conditional_update("unassign", &lease.lease_key, &condition, update, values)
            .await
    }

    async fn report_worker_metrics(&self, metrics: &WorkerMetrics) -> Result<WorkerMetrics> {
        let item = metrics.to_item();
        let mut values: HashMap<String, AttributeValue> = item
            .iter()
            .filter(|(name, _)| name.as_str() != "leaseKey")
            .map(|(name, value)| (format!(":{name}"), value.clone()))
            .collect();
        let set = values
            .keys()
            .map(|placeholder| format!("{} = {placeholder}", &placeholder[1..]))
            .collect::<Vec<_>>()
            .join(", ");
        values.insert(":one".to_owned(), n(1));
        values.insert(":base".to_owned(), n(heartbeat_base()));
        let update = format!("SET {set}, hbc = if_not_exists(hbc, :base) + :one");
        let out = retry(&self.config.backoff, || async {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(&metrics.worker_id)))
                .update_expression(&update)
                .set_expression_attribute_values(Some(values.clone()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(|err| sdk_error("report_worker_metrics", err))
        })
        .await?;
        match out.attributes() {
            Some(stored) => WorkerMetrics::from_item(stored),
            None => Err(LeaseError::Store {
                operation: "report_worker_metrics",
                message: "UpdateItem returned no attributes".to_owned(),
                retryable: false,
            }),
        }
    }

    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>> {
        let mut found = Vec::new();
        // BatchGetItem rejects a request naming a key twice.
        let unique: Vec<&String> = worker_ids
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // It reads at most 100 keys per call.
        for chunk in unique.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|id| Self::key(id)).collect();
            while !pending.is_empty() {
                let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .build()
                    .expect("keys are set");
                let out = retry(&self.config.backoff, || async {
                    self.client
                        .batch_get_item()
                        .request_items(&self.table, keys.clone())
                        .send()
                        .await
                        .map_err(|err| sdk_error("get_worker_metrics", err))
                })
                .await?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        if item.get("entityType").and_then(|t| t.as_s().ok())
                            == Some(&ENTITY_WORKER_METRICS.to_owned())
                        {
                            found.push(WorkerMetrics::from_item(item)?);
                        }
                    }
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    // Throttled: back off before asking for the rest.
                    tokio::time::sleep(self.config.backoff.initial).await;
                }
            }
        }
        Ok(found)
    }

    async fn notify_assignment(&self, worker_id: &str) -> Result<()> {
        let values = HashMap::from([
            (":one".to_owned(), n(1)),
            (":kind".to_owned(), s(ENTITY_WORKER_METRICS)),
        ]);
        self.conditional_update(
            "notify_assignment",
            worker_id,
            "entityType = :kind",
            "ADD ag :one",
            values,
        )
        .await
        .map(drop)
    }

    async fn set_worker_draining(&self, worker_id: &str, draining: bool) -> Result<bool> {
        let values = HashMap::from([
            (":draining".to_owned(), AttributeValue::Bool(draining)),
            (":kind".to_owned(), s(ENTITY_WORKER_METRICS)),
        ]);
        self.conditional_update(
            "set_worker_draining",
            worker_id,
            "entityType = :kind",
            "SET drn = :draining",
            values,
        )
        .await
    }

    async fn delete_worker_metrics(&self, worker_id: &str, last_update_secs: u64) -> Result<bool> {
        let values = HashMap::from([
            (":lut".to_owned(), n(last_update_secs)),
            (":kind".to_owned(), s(ENTITY_WORKER_METRICS)),
        ]);
        self.conditional_delete(
            "delete_worker_metrics",
            worker_id,
            "entityType = :kind AND lut = :lut",
            values,
        )
        .await
    }

    async fn get_leader_lock(&self) -> Result<Option<LeaderLock>> {
        self.get_item("get_leader_lock", LEADER_KEY)
            .await?
            .map(|item| LeaderLock::from_item(&item))
            .transpose()
    }

    async fn acquire_leader_lock(
        &self,
        lock: &LeaderLock,
        replacing: Option<&str>,
    ) -> Result<bool> {
        let mut values = HashMap::new();
        let condition = match replacing {
            None => "attribute_not_exists(leaseKey)",
            Some(version) => {
                values.insert(":version".to_owned(), s(version));
                "recordVersionNumber = :version"
            }
        };
        self.conditional_put("acquire_leader_lock", lock.to_item(), condition, values)
            .await
    }

    async fn renew_leader_lock(&self, lock: &LeaderLock, previous_version: &str) -> Result<bool> {
        let values = HashMap::from([
            (":owner".to_owned(), s(&lock.owner)),
            (":version".to_owned(), s(previous_version)),
        ]);
        self.conditional_put(
            "renew_leader_lock",
            lock.to_item(),
            "ownerName = :owner AND recordVersionNumber = :version",
            values,
        )
        .await
    }

    async fn release_leader_lock(&self, lock: &LeaderLock) -> Result<bool> {
        let values = HashMap::from([
            (":owner".to_owned(), s(&lock.owner)),
            (":version".to_owned(), s(&lock.record_version)),
        ]);
        self.conditional_delete(
            "release_leader_lock",
            LEADER_KEY,
            "ownerName = :owner AND recordVersionNumber = :version",
            values,
        )
        .await
    }

    async fn get_migration_state(&self) -> Result<Option<MigrationState>> {
        self.get_item("get_migration_state", MIGRATION_KEY)
            .await?
            .map(|item| MigrationState::from_item(&item))
            .transpose()
    }

    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected_version: Option<&str>,
    ) -> Result<bool> {
        let mut values = HashMap::new();
        let condition = match expected_version {
            None => "attribute_not_exists(leaseKey)",
            Some(version) => {
                values.insert(":version".to_owned(), s(version));
                "cv = :version"
            }
        };
        self.conditional_put("put_migration_state", state.to_item(), condition, values)
            .await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

    use super::*;

    fn client(endpoint: &str, timeouts: Option<TimeoutConfig>) -> aws_sdk_dynamodb::Client {
        let mut config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint);
        if let Some(timeouts) = timeouts {
            config = config.timeout_config(timeouts);
        }
        aws_sdk_dynamodb::Client::from_conf(config.build())
    }

    fn operation_timeout(store: &DynamoDbLeaseStore) -> Option<Duration> {
        store.client.config().timeout_config()?.operation_timeout()
    }

    /// A table endpoint that takes connections and requests and never answers: without a
    /// bound, every call would wait for good.
    #[tokio::test]
    async fn a_call_to_a_silent_table_fails_retryably_after_the_request_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        let config = TableConfig {
            request_timeout: Duration::from_millis(300),
            backoff: BackoffConfig {
                max_attempts: 2,
                ..BackoffConfig::default()
            },
            ..TableConfig::default()
        };
        let store = DynamoDbLeaseStore::new(client(&endpoint, None), "leases", config);
        let call = store.get_item("get_lease", "shard-0");
        let outcome = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("the call is bounded by the request timeout");
        match outcome {
            Err(LeaseError::Store { retryable, .. }) => assert!(retryable),
            other => panic!("expected a retryable store error, got {other:?}"),
        }
        silent.abort();
    }

    #[test]
    fn the_clients_own_operation_timeout_wins_over_the_default() {
        let own = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(5))
            .build();
        let store = DynamoDbLeaseStore::new(
            client("http://127.0.0.1:1", Some(own)),
            "t",
            TableConfig::default(),
        );
        assert_eq!(operation_timeout(&store), Some(Duration::from_secs(5)));
        let store = DynamoDbLeaseStore::new(
            client("http://127.0.0.1:1", None),
            "t",
            TableConfig::default(),
        );
        assert_eq!(operation_timeout(&store), Some(Duration::from_secs(60)));
    }
}
