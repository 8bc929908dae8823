//! The Java KCL properties file: the format (`java.util.Properties`) and the MultiLangDaemon's
//! keys.
//!
//! An existing amazon_kclpy application's properties file must work unchanged, so every key the
//! Java daemon reads is accepted here; the ones this daemon has no use for are logged, never
//! silently dropped, and an invalid value is an error at start naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

/// A properties file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PropertiesError {
    /// A required key is missing.
    #[error("the properties file has no {0}, which the daemon needs")]
    Missing(&'static str),
    /// A key has a value of the wrong form.
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// Parses the `java.util.Properties` text format: `key=value`, `key: value` or `key value`;
/// `#` and `!` comment lines; a trailing backslash continues a line; `\t`, `\n`, `\r`, `\f`,
/// `\uXXXX` and escaped separators in keys and values. Later keys override earlier ones.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        // Leading whitespace is dropped on first and continuation lines alike.
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_entry(&logical);
        entries.insert(unescape(&key), unescape(&value));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_entry(&logical);
        entries.insert(unescape(&key), unescape(&value));
    }
    entries
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace.
fn split_entry(line: &str) -> (String, String) {
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                let key = line[..at].to_owned();
                let mut rest = line[at..].trim_start_matches([' ', '\t', '\u{c}']);
                if c.is_whitespace() || rest.starts_with(['=', ':']) {
                    rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                } else {
                    rest = &rest[c.len_utf8()..];
                }
                return (
                    key,
                    rest.trim_start_matches([' ', '\t', '\u{c}']).to_owned(),
                );
            }
            _ => {}
        }
    }
    (line.to_owned(), String::new())
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Where a new lease starts reading.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InitialPosition {
    /// The newest records only.
    Latest,
    /// The oldest retained record.
    TrimHorizon,
    /// The first record at or after this time (ms since the epoch).
    AtTimestamp(i64),
}

/// How records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetrievalMode {
    /// GetRecords polling (shared throughput).
    Polling,
    /// SubscribeToShard (enhanced fan-out).
    FanOut,
}

/// The daemon's settings, read from a properties file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MultiLangConfig {
    /// The child command line, split on spaces (no shell).
    pub executable: Vec<String>,
    /// Stream name (or the name part of `streamArn`).
    pub stream_name: Option<String>,
    /// Stream ARN, when given.
    pub stream_arn: Option<String>,
    /// Application name; the lease table name unless `tableName` is set.
    pub application_name: String,
    /// Lease table name.
    pub table_name: String,
    /// AWS region.
    pub region: Option<String>,
    /// Kinesis endpoint override (e.g. the emulator).
    pub kinesis_endpoint: Option<String>,
    /// DynamoDB endpoint override.
    pub dynamodb_endpoint: Option<String>,
    /// Worker id; a random one when absent.
    pub worker_id: Option<String>,
    /// Where new leases start.
    pub initial_position: InitialPosition,
    /// Lease failover time.
    pub failover_time: Duration,
    /// Most records per GetRecords call.
    pub max_records: u32,
    /// Pause after an empty GetRecords.
    pub idle_time_between_reads: Duration,
    /// Most leases this worker holds.
    pub max_leases_for_worker: Option<u32>,
    /// Most leases taken from another worker at once.
    pub max_leases_to_steal_at_one_time: u32,
    /// Whether a lease taken from a live worker is handed off gracefully
    /// (`isGracefulLeaseHandoffEnabled`, default true).
    pub graceful_handoff: bool,
    /// How long an owner may take to hand a lease off (`gracefulLeaseHandoffTimeoutMillis`,
    /// default 30 s).
    pub graceful_handoff_timeout: Duration,
    /// Polling or fan-out: as in the Java daemon, fan-out unless `retrievalMode` says
    /// `POLLING`, or it is absent or `DEFAULT` and a polling key is set.
    pub retrieval_mode: RetrievalMode,
    /// The fan-out consumer's name (`fanoutConfig.consumerName`); the application name when
    /// absent.
    pub consumer_name: Option<String>,
    /// An already registered fan-out consumer (`fanoutConfig.consumerArn`).
    pub consumer_arn: Option<String>,
    /// How long a child may take for one action before it is killed; `None` waits forever.
    pub timeout: Option<Duration>,
    /// How long a graceful shutdown may take.
    pub shutdown_grace: Duration,
    /// How often shards are re-listed.
    pub shard_sync_interval: Duration,
    /// How often a shard waiting for its parents checks them; the worker's default when
    /// absent.
    pub parent_shard_poll_interval: Option<Duration>,
    /// First delay before a failed shard is restarted (doubling after further failures); the
    /// worker's default when absent.
    pub task_backoff: Option<Duration>,
    /// KCL 3 coordination: the protocol (`clientVersionConfig`) and the leader's and
    /// workers' settings under their Java keys; the library's defaults otherwise.
    pub coordination: kcl_lease::CoordinationConfig,
    /// Keys that were present and are not used by this daemon (logged at start).
    pub ignored_keys: Vec<String>,
}

/// Keys this daemon reads. `pollingConfig.<key>` and `fanoutConfig.<key>` are the Java
/// daemon's nested spelling of the same settings.
const USED: &[&str] = &[
    "executableName",
    "streamName",
    "streamArn",
    "applicationName",
    "tableName",
    "regionName",
    "kinesisEndpoint",
    "dynamoDBEndpoint",
    "workerId",
    "workerIdentifier",
    "initialPositionInStream",
    "initialPositionInStreamExtended",
    "failoverTimeMillis",
    "maxRecords",
    "idleTimeBetweenReadsInMillis",
    "maxLeasesForWorker",
    "maxLeasesToStealAtOneTime",
    "retrievalMode",
    "timeoutInSeconds",
    "shutdownGraceMillis",
    "shardSyncIntervalMillis",
    "parentShardPollIntervalMillis",
    "taskBackoffTimeMillis",
    "pollingConfig.maxRecords",
    "pollingConfig.idleTimeBetweenReadsInMillis",
    "fanoutConfig.consumerName",
    "fanoutConfig.consumerArn",
    "isGracefulLeaseHandoffEnabled",
    "gracefulLeaseHandoffTimeoutMillis",
    // KCL 3 coordination.
    "clientVersionConfig",
    "leaseAssignmentIntervalMillis",
    "inMemoryWorkerMetricsCaptureFrequencyMillis",
    "workerMetricsReporterFreqInMillis",
    "noOfPersistedMetricsPerWorkerMetrics",
    "disableWorkerMetrics",
    "maxThroughputPerHostKBps",
    "dampeningPercentage",
    "reBalanceThresholdPercentage",
    "allowThroughputOvershoot",
    "varianceBalancingFrequency",
    "workerMetricsEMAAlpha",
    "staleWorkerMetricsEntryCleanupDuration",
];

/// The Java daemon's polling keys: with no `retrievalMode` (or `DEFAULT`), setting any of
/// them to something other than 0 selects polling, as in Java.
const POLLING_KEYS: &[&str] = &[
    "maxRecords",
    "idleTimeBetweenReadsInMillis",
    "millisBehindLatestThresholdForReducedTps",
    "retryGetRecordsInSeconds",
    "maxGetRecordsThreadPool",
];

/// KCL 3 keys with no counterpart here: this daemon keeps every KCL 3 item in the lease
/// table (Java 3.5's layout), so the separate tables' names and provisioning, and the
/// migration into the lease table, do not apply. Accepted, with a debug log.
const KCL3_NOT_NEEDED: &[&str] = &[
    "migrateAllEntitiesToLeaseTable",
    "tableMigrationCompleteBakeTimeSeconds",
    "workerMetricsTableName",
    "workerMetricsBillingMode",
    "workerMetricsReadCapacity",
    "workerMetricsWriteCapacity",
    "workerMetricsPointInTimeRecoveryEnabled",
    "workerMetricsDeletionProtectionEnabled",
    "workerMetricsTags",
    "coordinatorStateTableName",
    "coordinatorStateBillingMode",
    "coordinatorStateReadCapacity",
    "coordinatorStateWriteCapacity",
    "coordinatorStatePointInTimeRecoveryEnabled",
    "coordinatorStateDeletionProtectionEnabled",
    "coordinatorStateTags",
];

/// CloudWatch metrics settings: nothing is published to CloudWatch (`--metrics-addr` serves
/// Prometheus metrics instead).
const CLOUDWATCH_METRICS: &[&str] = &[
    "metricsLevel",
    "metricsEnabledDimensions",
    "metricsBufferTimeMillis",
    "metricsMaxQueueSize",
    "cloudWatchEndpoint",
    "cloudWatchRegionName",
];

/// Other keys of the Java daemon (and of its KCL 1 predecessor) that tune parts this daemon
/// does differently or not at all: JVM thread pools, lease-table provisioning, retry and
/// logging knobs. Accepted, with no effect.
const NO_EQUIVALENT: &[&str] = &[
    "processingLanguage",
    "maxActiveThreads",
    "enablePriorityLeaseAssignment",
    "leaseTableDeletionProtectionEnabled",
    "leaseTablePitrEnabled",
    "cleanupLeasesUponShardCompletion",
    "ignoreUnexpectedChildShards",
    "initialLeaseTableReadCapacity",
    "initialLeaseTableWriteCapacity",
    "leaseTableScanTotalSegments",
    "maxLeaseRenewalThreads",
    "listShardsBackoffTimeInMillis",
    "maxListShardsRetryAttempts",
    "callProcessRecordsEvenForEmptyRecordList",
    "shardPrioritization",
    "skipShardSyncAtWorkerInitializationIfLeasesExist",
    "schedulerInitializationBackoffTimeMillis",
    "logWarningForTaskAfterMillis",
    "validateSequenceNumberBeforeCheckpointing",
    "retryGetRecordsInSeconds",
    "maxGetRecordsThreadPool",
    "millisBehindLatestThresholdForReducedTps",
    "userAgent",
    "dynamoDBRegionName",
    "kinesisRegionName",
    "logLevel",
];

/// Prefixes of the Java daemon's nested keys (SDK client builders, the retrieval beans) that
/// have no counterpart here beyond the keys in [`USED`].
const NO_EQUIVALENT_PREFIXES: &[&str] = &[
    "kinesisClient.",
    "dynamoDbClient.",
    "cloudWatchClient.",
    "pollingConfig.",
    "fanoutConfig.",
];

/// What the daemon does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUse {
    /// Read and honoured.
    Used,
    /// A Java daemon key accepted without effect, and why.
    NoEffect(&'static str),
    /// A Java daemon key that does not apply to how this daemon works, and why (logged at
    /// debug level only: setting it is not a mistake).
    NotNeeded(&'static str),
    /// Not a key the Java daemon knows.
    Unknown,
}

/// Tells what the daemon does with `key`.
pub fn key_use(key: &str) -> KeyUse {
    if USED.contains(&key) {
        KeyUse::Used
    } else if key
        .to_ascii_lowercase()
        .starts_with("awscredentialsprovider")
    {
        // Java matches this family case-insensitively (AWSCredentialsProvider, ...DynamoDB).
        KeyUse::NoEffect("credentials come from the default AWS chain")
    } else if KCL3_NOT_NEEDED.contains(&key) {
        KeyUse::NotNeeded("KCL 3 items all live in the lease table")
    } else if CLOUDWATCH_METRICS.contains(&key) {
        KeyUse::NoEffect("no CloudWatch metrics are published (see --metrics-addr)")
    } else if NO_EQUIVALENT.contains(&key)
        || NO_EQUIVALENT_PREFIXES.iter().any(|p| key.starts_with(p))
    {
        KeyUse::NoEffect("no equivalent in this daemon")
    } else {
        KeyUse::Unknown
    }
}

fn number<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, PropertiesError> {
    match props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| PropertiesError::Invalid {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: "expected a non-negative whole number".to_owned(),
            }),
    }
}

/// A `true`/`false` value (any case, as Java's `Boolean.parseBoolean` reads the word).
fn boolean(props: &BTreeMap<String, String>, key: &str) -> Result<Option<bool>, PropertiesError> {
    match props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(value) => Err(PropertiesError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: "expected true or false".to_owned(),
        }),
    }
}

/// A polling number under its plain key or the Java daemon's `pollingConfig.` spelling.
fn polling_number<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, PropertiesError> {
    match number(props, key)? {
        Some(value) => Ok(Some(value)),
        None => number(props, &format!("pollingConfig.{key}")),
    }
}

fn text(props: &BTreeMap<String, String>, key: &str) -> Option<String> {
    props
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `initialPositionInStreamExtended` is, as in Java, a timestamp in epoch seconds; this
/// daemon also reads `AT_TIMESTAMP:<epoch milliseconds>`. `initialPositionInStream` is a name,
/// in any case.
fn initial_position(props: &BTreeMap<String, String>) -> Result<InitialPosition, PropertiesError> {
    if let Some(value) = text(props, "initialPositionInStreamExtended") {
        let invalid = || PropertiesError::Invalid {
            key: "initialPositionInStreamExtended".to_owned(),
            value: value.clone(),
            reason: "expected a timestamp in epoch seconds (or AT_TIMESTAMP:<epoch milliseconds>)"
                .to_owned(),
        };
        let millis = match value.strip_prefix("AT_TIMESTAMP") {
            Some(rest) => rest
                .trim_start_matches([':', ' '])
                .parse::<i64>()
                .map_err(|_| invalid())?,
            None => value
                .parse::<i64>()
                .ok()
                .and_then(|seconds| seconds.checked_mul(1000))
                .ok_or_else(invalid)?,
        };
        return Ok(InitialPosition::AtTimestamp(millis));
    }
    match text(props, "initialPositionInStream").map(|v| v.to_ascii_uppercase()) {
        None => Ok(InitialPosition::Latest),
        Some(name) if name == "LATEST" => Ok(InitialPosition::Latest),
        Some(name) if name == "TRIM_HORIZON" => Ok(InitialPosition::TrimHorizon),
        Some(_) => Err(PropertiesError::Invalid {
            key: "initialPositionInStream".to_owned(),
            value: text(props, "initialPositionInStream").unwrap_or_default(),
            reason: "expected LATEST or TRIM_HORIZON (a timestamp goes in \
                     initialPositionInStreamExtended)"
                .to_owned(),
        }),
    }
}

/// Java's rule: `POLLING` or `FANOUT` as written; otherwise (absent or `DEFAULT`) fan-out,
/// unless a polling key is set to something other than 0.
fn retrieval_mode(props: &BTreeMap<String, String>) -> Result<RetrievalMode, PropertiesError> {
    let written = text(props, "retrievalMode");
    match written.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("POLLING") => return Ok(RetrievalMode::Polling),
        Some("FANOUT") | Some("FAN_OUT") => return Ok(RetrievalMode::FanOut),
        None | Some("DEFAULT") => {}
        Some(_) => {
            return Err(PropertiesError::Invalid {
                key: "retrievalMode".to_owned(),
                value: written.unwrap_or_default(),
                reason: "expected FANOUT, POLLING or DEFAULT".to_owned(),
            })
        }
    }
    let mut polling_keys = Vec::new();
    for key in POLLING_KEYS {
        for spelled in [key.to_string(), format!("pollingConfig.{key}")] {
            if number::<u64>(props, &spelled)?.is_some_and(|v| v != 0) {
                polling_keys.push(spelled);
            }
        }
    }
    if polling_keys.is_empty() {
        tracing::info!("reading by enhanced fan-out, the Java daemon's default (set retrievalMode = POLLING to poll)");
        Ok(RetrievalMode::FanOut)
    } else {
        tracing::info!(
            keys = ?polling_keys,
            "polling properties are set, so reading by polling (set retrievalMode = FANOUT for fan-out)"
        );
        Ok(RetrievalMode::Polling)
    }
}

/// A decimal number (Java reads these keys as doubles).
fn decimal(props: &BTreeMap<String, String>, key: &str) -> Result<Option<f64>, PropertiesError> {
    match props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => match value.parse::<f64>() {
            Ok(number) if number.is_finite() && number >= 0.0 => Ok(Some(number)),
            _ => Err(PropertiesError::Invalid {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: "expected a non-negative number".to_owned(),
            }),
        },
    }
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it: `PnDTnHnMn.nS` (e.g. `P1D`,
/// `PT12H`, `PT90.5S`).
fn iso_duration(text: &str) -> Option<Duration> {
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut seconds = 0.0;
    if !days.is_empty() {
        seconds += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    if let Some(mut time) = time {
        if time.is_empty() {
            return None;
        }
        for (unit, factor) in [('H', 3_600.0), ('M', 60.0), ('S', 1.0)] {
            if let Some(at) = time.find(unit) {
                seconds += time[..at].parse::<f64>().ok()? * factor;
                time = &time[at + 1..];
            }
        }
        if !time.is_empty() {
            return None;
        }
    }
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The KCL 3 keys that map to [`kcl_lease::CoordinationConfig`].
fn coordination(
    props: &BTreeMap<String, String>,
) -> Result<kcl_lease::CoordinationConfig, PropertiesError> {
    let mut config = kcl_lease::CoordinationConfig::default();
    if let Some(version) = text(props, "clientVersionConfig") {
        config.mode = match version.to_ascii_uppercase().as_str() {
            "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X" => {
                kcl_lease::CoordinationMode::CompatibleWith2x
            }
            "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X_PHASE1" => kcl_lease::CoordinationMode::Kcl2,
            "CLIENT_VERSION_CONFIG_3X" => kcl_lease::CoordinationMode::Kcl3,
            _ => return Err(PropertiesError::Invalid {
                key: "clientVersionConfig".to_owned(),
                value: version,
                reason:
                    "expected CLIENT_VERSION_CONFIG_3X, CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X \
                             or CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X_PHASE1"
                        .to_owned(),
            }),
        };
    }
    if let Some(millis) = number::<u64>(props, "leaseAssignmentIntervalMillis")? {
        config.assignment_interval = Duration::from_millis(millis);
    }
    // Under KCL 3 a worker's report is its heartbeat and is not slowed to Java's period; the
    // key sets the reports of a 2.x worker during an upgrade, which has no heartbeat to keep.
    if let Some(millis) = number::<u64>(props, "workerMetricsReporterFreqInMillis")? {
        config.upgrade_report_interval = Duration::from_millis(millis);
    }
    if let Some(millis) = number::<u64>(props, "inMemoryWorkerMetricsCaptureFrequencyMillis")? {
        config.metrics_capture_interval = Duration::from_millis(millis);
    }
    if let Some(count) = number::<usize>(props, "noOfPersistedMetricsPerWorkerMetrics")? {
        config.persisted_metric_values = count;
    }
    if let Some(disabled) = boolean(props, "disableWorkerMetrics")? {
        config.disable_worker_metrics = disabled;
    }
    if let Some(max) = decimal(props, "maxThroughputPerHostKBps")? {
        config.max_throughput_per_host_kbps = Some(max);
    }
    if let Some(percent) = decimal(props, "dampeningPercentage")? {
        config.dampening_percent = percent;
    }
    if let Some(percent) = decimal(props, "reBalanceThresholdPercentage")? {
        config.rebalance_threshold_percent = percent;
    }
    if let Some(allow) = boolean(props, "allowThroughputOvershoot")? {
        config.allow_throughput_overshoot = allow;
    }
    if let Some(frequency) = number::<u32>(props, "varianceBalancingFrequency")? {
        config.variance_balancing_frequency = frequency;
    }
    if let Some(alpha) = decimal(props, "workerMetricsEMAAlpha")? {
        config.metrics_ema_alpha = alpha;
    }
    if let Some(written) = text(props, "staleWorkerMetricsEntryCleanupDuration") {
        config.stale_worker_metrics_cleanup =
            iso_duration(&written).ok_or_else(|| PropertiesError::Invalid {
                key: "staleWorkerMetricsEntryCleanupDuration".to_owned(),
                value: written.clone(),
                reason: "expected an ISO-8601 duration such as P1D or PT12H".to_owned(),
            })?;
    }
    Ok(config)
}

impl MultiLangConfig {
    /// Reads the daemon's settings from parsed properties. Every key without effect is logged
    /// first (unknown ones as warnings), so a file that fails is fully reported.
    ///
    /// # Errors
    /// [`PropertiesError`] naming the first missing or invalid key.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<MultiLangConfig, PropertiesError> {
        let mut ignored_keys = Vec::new();
        for key in props.keys() {
            match key_use(key) {
                KeyUse::Used => {}
                KeyUse::NoEffect(why) => {
                    tracing::info!(key, "property has no effect in this daemon: {why}");
                    ignored_keys.push(key.clone());
                }
                KeyUse::NotNeeded(why) => {
                    tracing::debug!(key, "property not needed by this daemon: {why}");
                    ignored_keys.push(key.clone());
                }
                KeyUse::Unknown => {
                    tracing::warn!(key, "unknown property ignored");
                    ignored_keys.push(key.clone());
                }
            }
        }
        let executable: Vec<String> = text(props, "executableName")
            .ok_or(PropertiesError::Missing("executableName"))?
            .split(' ')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        let stream_arn = text(props, "streamArn");
        // As in Java, the ARN's stream name wins over streamName.
        let stream_name = stream_arn
            .as_ref()
            .and_then(|arn| arn.split_once(":stream/").map(|(_, name)| name.to_owned()))
            .or_else(|| text(props, "streamName"));
        if stream_name.is_none() {
            return Err(PropertiesError::Missing("streamName or streamArn"));
        }
        let application_name =
            text(props, "applicationName").ok_or(PropertiesError::Missing("applicationName"))?;
        let initial_position = initial_position(props)?;
        let retrieval_mode = retrieval_mode(props)?;
        let millis = |key: &str, default: u64| -> Result<Duration, PropertiesError> {
            Ok(Duration::from_millis(
                number::<u64>(props, key)?.unwrap_or(default),
            ))
        };
        Ok(MultiLangConfig {
            executable,
            table_name: text(props, "tableName").unwrap_or_else(|| application_name.clone()),
            application_name,
            stream_name,
            stream_arn,
            region: text(props, "regionName"),
            kinesis_endpoint: text(props, "kinesisEndpoint"),
            dynamodb_endpoint: text(props, "dynamoDBEndpoint"),
            worker_id: text(props, "workerId").or_else(|| text(props, "workerIdentifier")),
            initial_position,
            failover_time: millis("failoverTimeMillis", 10_000)?,
            max_records: polling_number(props, "maxRecords")?.unwrap_or(10_000),
            idle_time_between_reads: Duration::from_millis(
                polling_number(props, "idleTimeBetweenReadsInMillis")?.unwrap_or(1_000),
            ),
            max_leases_for_worker: number(props, "maxLeasesForWorker")?,
            max_leases_to_steal_at_one_time: number(props, "maxLeasesToStealAtOneTime")?
                .unwrap_or(1),
            graceful_handoff: boolean(props, "isGracefulLeaseHandoffEnabled")?.unwrap_or(true),
            graceful_handoff_timeout: millis("gracefulLeaseHandoffTimeoutMillis", 30_000)?,
            retrieval_mode,
            consumer_name: text(props, "fanoutConfig.consumerName"),
            consumer_arn: text(props, "fanoutConfig.consumerArn"),
            timeout: number::<u64>(props, "timeoutInSeconds")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            shutdown_grace: millis("shutdownGraceMillis", 5_000)?,
            shard_sync_interval: millis("shardSyncIntervalMillis", 60_000)?,
            parent_shard_poll_interval: number(props, "parentShardPollIntervalMillis")?
                .map(Duration::from_millis),
            task_backoff: number(props, "taskBackoffTimeMillis")?.map(Duration::from_millis),
            coordination: coordination(props)?,
            ignored_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_java_properties_format() {
        let props = parse(
            "# comment\n! also a comment\nexecutableName = python3 app.py\nstreamName:orders\n\
             applicationName  MyApp\nlong = first \\\n    second\nesc\\=aped = a\\tb\\u0041\n\n",
        );
        assert_eq!(props["executableName"], "python3 app.py");
        assert_eq!(props["streamName"], "orders");
        assert_eq!(props["applicationName"], "MyApp");
        assert_eq!(props["long"], "first second");
        assert_eq!(props["esc=aped"], "a\tbA");
    }

    #[test]
    fn reads_the_daemon_keys_with_defaults() {
        let props = parse(
            "executableName = python3 app.py --flag\nstreamArn = arn:aws:kinesis:us-east-1:000000000000:stream/s\n\
             applicationName = app\ninitialPositionInStream = TRIM_HORIZON\nmaxRecords = 500\n\
             timeoutInSeconds = 30\nAWSCredentialsProvider = DefaultCredentialsProvider\nsomethingNew = 1\n",
        );
        let config = MultiLangConfig::from_properties(&props).unwrap();
        assert_eq!(config.executable, ["python3", "app.py", "--flag"]);
        assert_eq!(config.stream_name.as_deref(), Some("s"));
        assert_eq!(config.table_name, "app");
        assert_eq!(config.initial_position, InitialPosition::TrimHorizon);
        assert_eq!(config.max_records, 500);
        assert_eq!(config.timeout, Some(Duration::from_secs(30)));
        assert_eq!(config.failover_time, Duration::from_secs(10));
        assert_eq!(
            config.ignored_keys,
            ["AWSCredentialsProvider", "somethingNew"]
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        let base = "executableName = x\nstreamName = s\napplicationName = a\n";
        for (extra, key) in [
            ("maxRecords = lots", "maxRecords"),
            (
                "initialPositionInStream = SOMETIME",
                "initialPositionInStream",
            ),
            ("retrievalMode = CARRIER_PIGEON", "retrievalMode"),
            (
                "initialPositionInStreamExtended = AT_TIMESTAMP:yesterday",
                "initialPositionInStreamExtended",
            ),
        ] {
            let err =
                MultiLangConfig::from_properties(&parse(&format!("{base}{extra}\n"))).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = MultiLangConfig::from_properties(&parse("streamName = s\n")).unwrap_err();
        assert!(err.to_string().contains("executableName"));
    }

    fn config_with(extra: &str) -> MultiLangConfig {
        let base = "executableName = x\nstreamName = s\napplicationName = a\n";
        MultiLangConfig::from_properties(&parse(&format!("{base}{extra}\n"))).unwrap()
    }

    #[test]
    fn the_graceful_handoff_keys_are_honoured() {
        let default = config_with("");
        assert!(default.graceful_handoff);
        assert_eq!(default.graceful_handoff_timeout, Duration::from_secs(30));
        let set = config_with(
            "isGracefulLeaseHandoffEnabled = FALSE\ngracefulLeaseHandoffTimeoutMillis = 5000",
        );
        assert!(!set.graceful_handoff);
        assert_eq!(set.graceful_handoff_timeout, Duration::from_secs(5));
        let err = MultiLangConfig::from_properties(&parse(
            "executableName = x\nstreamName = s\napplicationName = a\nisGracefulLeaseHandoffEnabled = maybe\n",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("isGracefulLeaseHandoffEnabled"),
            "{err}"
        );
    }

    #[test]
    fn the_extended_initial_position_is_epoch_seconds_as_in_java() {
        assert_eq!(
            config_with("initialPositionInStreamExtended = 1636609142").initial_position,
            InitialPosition::AtTimestamp(1_636_609_142_000)
        );
        // It wins over the plain position, whichever comes first in the file.
        assert_eq!(
            config_with(
                "initialPositionInStreamExtended = 1636609142\ninitialPositionInStream = LATEST"
            )
            .initial_position,
            InitialPosition::AtTimestamp(1_636_609_142_000)
        );
        assert_eq!(
            config_with("initialPositionInStreamExtended = AT_TIMESTAMP:1636609142123")
                .initial_position,
            InitialPosition::AtTimestamp(1_636_609_142_123)
        );
        assert_eq!(
            config_with("initialPositionInStream = trim_horizon").initial_position,
            InitialPosition::TrimHorizon
        );
    }

    #[test]
    fn the_retrieval_mode_follows_the_java_default_rule() {
        // No mode and no polling key: fan-out, as the Java daemon reads.
        assert_eq!(config_with("").retrieval_mode, RetrievalMode::FanOut);
        assert_eq!(
            config_with("retrievalMode = DEFAULT").retrieval_mode,
            RetrievalMode::FanOut
        );
        assert_eq!(
            config_with("retrievalMode = default").retrieval_mode,
            RetrievalMode::FanOut
        );
        // A polling key set to something other than 0 selects polling...
        for key in POLLING_KEYS {
            assert_eq!(
                config_with(&format!("{key} = 5")).retrieval_mode,
                RetrievalMode::Polling,
                "{key}"
            );
            assert_eq!(
                config_with(&format!("retrievalMode = DEFAULT\npollingConfig.{key} = 5"))
                    .retrieval_mode,
                RetrievalMode::Polling,
                "pollingConfig.{key}"
            );
        }
        // ... 0 counts as unset, as in Java ...
        assert_eq!(
            config_with("idleTimeBetweenReadsInMillis = 0").retrieval_mode,
            RetrievalMode::FanOut
        );
        // ... and an explicit mode wins.
        assert_eq!(
            config_with("retrievalMode = FANOUT\nmaxRecords = 100").retrieval_mode,
            RetrievalMode::FanOut
        );
        assert_eq!(
            config_with("retrievalMode = polling").retrieval_mode,
            RetrievalMode::Polling
        );
        let fan_out = config_with(
            "fanoutConfig.consumerName = c\nfanoutConfig.consumerArn = arn:aws:kinesis:us-east-1:1:stream/s/consumer/c:1",
        );
        assert_eq!(fan_out.consumer_name.as_deref(), Some("c"));
        assert!(fan_out.consumer_arn.is_some());
    }

    #[test]
    fn the_arn_names_the_stream_as_in_java() {
        let config =
            config_with("streamArn = arn:aws:kinesis:us-east-1:000000000000:stream/from-arn");
        assert_eq!(config.stream_name.as_deref(), Some("from-arn"));
    }

    /// Every key the Java MultiLangDaemon (3.x) reads, from its configuration classes.
    const JAVA_KEYS: &[&str] = &[
        "executableName",
        "processingLanguage",
        "maxActiveThreads",
        "applicationName",
        "streamName",
        "streamArn",
        "tableName",
        "workerId",
        "workerIdentifier",
        "failoverTimeMillis",
        "leaseAssignmentIntervalMillis",
        "enablePriorityLeaseAssignment",
        "leaseTableDeletionProtectionEnabled",
        "leaseTablePitrEnabled",
        "shardSyncIntervalMillis",
        "cleanupLeasesUponShardCompletion",
        "ignoreUnexpectedChildShards",
        "maxLeasesForWorker",
        "maxLeasesToStealAtOneTime",
        "initialLeaseTableReadCapacity",
        "initialLeaseTableWriteCapacity",
        "leaseTableScanTotalSegments",
        "initialPositionInStreamExtended",
        "initialPositionInStream",
        "maxLeaseRenewalThreads",
        "listShardsBackoffTimeInMillis",
        "maxListShardsRetryAttempts",
        "callProcessRecordsEvenForEmptyRecordList",
        "parentShardPollIntervalMillis",
        "shardPrioritization",
        "skipShardSyncAtWorkerInitializationIfLeasesExist",
        "schedulerInitializationBackoffTimeMillis",
        "clientVersionConfig",
        "migrateAllEntitiesToLeaseTable",
        "tableMigrationCompleteBakeTimeSeconds",
        "taskBackoffTimeMillis",
        "metricsBufferTimeMillis",
        "metricsMaxQueueSize",
        "metricsLevel",
        "logWarningForTaskAfterMillis",
        "metricsEnabledDimensions",
        "retrievalMode",
        "validateSequenceNumberBeforeCheckpointing",
        "shutdownGraceMillis",
        "timeoutInSeconds",
        "AwsCredentialsProvider",
        "AWSCredentialsProvider",
        "AwsCredentialsProviderDynamoDB",
        "AwsCredentialsProviderCloudWatch",
        "awsCredentialsProvider",
        "regionName",
        "kinesisEndpoint",
        "dynamoDBEndpoint",
        "retryGetRecordsInSeconds",
        "maxGetRecordsThreadPool",
        "idleTimeBetweenReadsInMillis",
        "millisBehindLatestThresholdForReducedTps",
        "maxRecords",
        "gracefulLeaseHandoffTimeoutMillis",
        "isGracefulLeaseHandoffEnabled",
        "inMemoryWorkerMetricsCaptureFrequencyMillis",
        "workerMetricsReporterFreqInMillis",
        "noOfPersistedMetricsPerWorkerMetrics",
        "disableWorkerMetrics",
        "maxThroughputPerHostKBps",
        "dampeningPercentage",
        "reBalanceThresholdPercentage",
        "allowThroughputOvershoot",
        "varianceBalancingFrequency",
        "workerMetricsEMAAlpha",
        "staleWorkerMetricsEntryCleanupDuration",
        "workerMetricsTableName",
        "workerMetricsBillingMode",
        "workerMetricsReadCapacity",
        "workerMetricsWriteCapacity",
        "workerMetricsPointInTimeRecoveryEnabled",
        "workerMetricsDeletionProtectionEnabled",
        "workerMetricsTags",
        "coordinatorStateTableName",
        "coordinatorStateBillingMode",
        "coordinatorStateReadCapacity",
        "coordinatorStateWriteCapacity",
        "coordinatorStatePointInTimeRecoveryEnabled",
        "coordinatorStateDeletionProtectionEnabled",
        "coordinatorStateTags",
        "fanoutConfig.consumerName",
        "fanoutConfig.consumerArn",
        "fanoutConfig.maxDescribeStreamSummaryRetries",
        "pollingConfig.maxRecords",
        "kinesisClient.endpointOverride",
        "dynamoDbClient.region",
    ];

    #[test]
    fn no_key_of_the_java_daemon_is_unknown() {
        for key in JAVA_KEYS {
            assert_ne!(key_use(key), KeyUse::Unknown, "{key}");
        }
        // The KCL 3 keys of the separate tables are accepted and say why they do not apply.
        for key in KCL3_NOT_NEEDED {
            match key_use(key) {
                KeyUse::NotNeeded(why) => assert!(why.contains("KCL 3"), "{key}: {why}"),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(key_use("clientVersionConfig"), KeyUse::Used);
        assert_eq!(key_use("leaseAssignmentIntervalMillis"), KeyUse::Used);
        assert_eq!(key_use("somethingNew"), KeyUse::Unknown);
    }

    #[test]
    fn the_kcl3_keys_set_coordination() {
        let default = config_with("");
        assert_eq!(default.coordination.mode, kcl_lease::CoordinationMode::Kcl3);
        assert_eq!(
            default.coordination.assignment_interval,
            Duration::from_secs(20)
        );
        let set = config_with(
            "clientVersionConfig = CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X\n\
             leaseAssignmentIntervalMillis = 5000\n\
             inMemoryWorkerMetricsCaptureFrequencyMillis = 2000\n\
             noOfPersistedMetricsPerWorkerMetrics = 4\n\
             disableWorkerMetrics = true\n\
             maxThroughputPerHostKBps = 2048.5\n\
             dampeningPercentage = 40\n\
             reBalanceThresholdPercentage = 15\n\
             allowThroughputOvershoot = false\n\
             varianceBalancingFrequency = 5\n\
             workerMetricsEMAAlpha = 0.25\n\
             staleWorkerMetricsEntryCleanupDuration = PT12H\n\
             workerMetricsTableName = app-WorkerMetricStats\n\
             workerMetricsReporterFreqInMillis = 15000",
        );
        let c = &set.coordination;
        assert_eq!(c.mode, kcl_lease::CoordinationMode::CompatibleWith2x);
        assert_eq!(c.upgrade_report_interval, Duration::from_secs(15));
        assert_eq!(c.assignment_interval, Duration::from_secs(5));
        assert_eq!(c.metrics_capture_interval, Duration::from_secs(2));
        assert_eq!(c.persisted_metric_values, 4);
        assert!(c.disable_worker_metrics);
        assert_eq!(c.max_throughput_per_host_kbps, Some(2048.5));
        assert_eq!(c.dampening_percent, 40.0);
        assert_eq!(c.rebalance_threshold_percent, 15.0);
        assert!(!c.allow_throughput_overshoot);
        assert_eq!(c.variance_balancing_frequency, 5);
        assert_eq!(c.metrics_ema_alpha, 0.25);
        assert_eq!(
            c.stale_worker_metrics_cleanup,
            Duration::from_secs(12 * 3600)
        );
        // The heartbeat is not slowed down to Java's 30 s report.
        assert_eq!(
            c.report_interval,
            kcl_lease::CoordinationConfig::default().report_interval
        );
        assert_eq!(set.ignored_keys, ["workerMetricsTableName"]);
        for phase in [
            "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X_PHASE1",
            "CLIENT_VERSION_CONFIG_3X",
        ] {
            let mode = config_with(&format!("clientVersionConfig = {phase}"))
                .coordination
                .mode;
            let expected = if phase.ends_with("3X") {
                kcl_lease::CoordinationMode::Kcl3
            } else {
                kcl_lease::CoordinationMode::Kcl2
            };
            assert_eq!(mode, expected, "{phase}");
        }
        let base = "executableName = x\nstreamName = s\napplicationName = a\n";
        for (extra, key) in [
            (
                "clientVersionConfig = CLIENT_VERSION_CONFIG_4X",
                "clientVersionConfig",
            ),
            ("dampeningPercentage = lots", "dampeningPercentage"),
            (
                "staleWorkerMetricsEntryCleanupDuration = 1 day",
                "staleWorkerMetricsEntryCleanupDuration",
            ),
        ] {
            let err =
                MultiLangConfig::from_properties(&parse(&format!("{base}{extra}\n"))).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn iso_durations_parse_as_in_java() {
        assert_eq!(iso_duration("P1D"), Some(Duration::from_secs(86_400)));
        assert_eq!(iso_duration("PT1H30M"), Some(Duration::from_secs(5_400)));
        assert_eq!(iso_duration("pt90.5s"), Some(Duration::from_secs_f64(90.5)));
        assert_eq!(iso_duration("P1DT1S"), Some(Duration::from_secs(86_401)));
        assert_eq!(iso_duration("PT"), None);
        assert_eq!(iso_duration("1D"), None);
        assert_eq!(iso_duration("PT5X"), None);
    }
}
