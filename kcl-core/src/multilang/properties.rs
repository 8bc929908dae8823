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
    /// Polling or fan-out.
    pub retrieval_mode: RetrievalMode,
    /// How long a child may take for one action before it is killed; `None` waits forever.
    pub timeout: Option<Duration>,
    /// How long a graceful shutdown may take.
    pub shutdown_grace: Duration,
    /// How often shards are re-listed.
    pub shard_sync_interval: Duration,
    /// Keys that were present and are not used by this daemon (logged at start).
    pub ignored_keys: Vec<String>,
}

/// Keys the Java daemon knows that change nothing here (credentials providers, metrics and
/// JVM thread-pool settings): accepted, and reported as ignored.
const KNOWN_UNUSED: &[&str] = &[
    "AWSCredentialsProvider",
    "AwsCredentialsProvider",
    "AWSCredentialsProviderDynamoDB",
    "AWSCredentialsProviderCloudWatch",
    "AwsCredentialsProviderDynamoDB",
    "AwsCredentialsProviderCloudWatch",
    "processingLanguage",
    "metricsLevel",
    "metricsEnabledDimensions",
    "metricsBufferTimeMillis",
    "metricsMaxQueueSize",
    "callProcessRecordsEvenForEmptyRecordList",
    "parentShardPollIntervalMillis",
    "cleanupLeasesUponShardCompletion",
    "taskBackoffTimeMillis",
    "validateSequenceNumberBeforeCheckpointing",
    "maxActiveThreads",
    "userAgent",
    "cloudWatchEndpoint",
    "cloudWatchRegionName",
    "dynamoDBRegionName",
    "kinesisRegionName",
    "logLevel",
];

/// Keys this daemon reads.
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
];

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

fn text(props: &BTreeMap<String, String>, key: &str) -> Option<String> {
    props
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl MultiLangConfig {
    /// Reads the daemon's settings from parsed properties.
    ///
    /// # Errors
    /// [`PropertiesError`] naming the first missing or invalid key.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<MultiLangConfig, PropertiesError> {
        let executable: Vec<String> = text(props, "executableName")
            .ok_or(PropertiesError::Missing("executableName"))?
            .split(' ')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        let stream_arn = text(props, "streamArn");
        let stream_name = text(props, "streamName").or_else(|| {
            stream_arn
                .as_ref()
                .and_then(|arn| arn.split_once(":stream/").map(|(_, name)| name.to_owned()))
        });
        if stream_name.is_none() {
            return Err(PropertiesError::Missing("streamName or streamArn"));
        }
        let application_name =
            text(props, "applicationName").ok_or(PropertiesError::Missing("applicationName"))?;
        let initial_position = match text(props, "initialPositionInStreamExtended")
            .or_else(|| text(props, "initialPositionInStream"))
            .as_deref()
        {
            None | Some("LATEST") => InitialPosition::Latest,
            Some("TRIM_HORIZON") => InitialPosition::TrimHorizon,
            Some(other) => match other
                .strip_prefix("AT_TIMESTAMP")
                .map(|rest| rest.trim_start_matches([':', ' ']))
            {
                Some(millis) => InitialPosition::AtTimestamp(millis.parse().map_err(|_| {
                    PropertiesError::Invalid {
                        key: "initialPositionInStreamExtended".to_owned(),
                        value: other.to_owned(),
                        reason: "expected AT_TIMESTAMP:<epoch milliseconds>".to_owned(),
                    }
                })?),
                None => {
                    return Err(PropertiesError::Invalid {
                        key: "initialPositionInStream".to_owned(),
                        value: other.to_owned(),
                        reason: "expected LATEST, TRIM_HORIZON or AT_TIMESTAMP".to_owned(),
                    })
                }
            },
        };
        let retrieval_mode = match text(props, "retrievalMode")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("POLLING") => RetrievalMode::Polling,
            Some("FANOUT") | Some("FAN_OUT") => RetrievalMode::FanOut,
            Some(_) => {
                return Err(PropertiesError::Invalid {
                    key: "retrievalMode".to_owned(),
                    value: text(props, "retrievalMode").unwrap_or_default(),
                    reason: "expected POLLING or FANOUT".to_owned(),
                })
            }
        };
        let millis = |key: &str, default: u64| -> Result<Duration, PropertiesError> {
            Ok(Duration::from_millis(
                number::<u64>(props, key)?.unwrap_or(default),
            ))
        };
        let ignored_keys = props
            .keys()
            .filter(|k| !USED.contains(&k.as_str()))
            .cloned()
            .collect::<Vec<_>>();
        for key in &ignored_keys {
            if KNOWN_UNUSED.contains(&key.as_str()) {
                tracing::info!(key, "property not used by this daemon");
            } else {
                tracing::warn!(key, "unknown property ignored");
            }
        }
        Ok(MultiLangConfig {
            executable,
            table_name: text(props, "tableName").unwrap_or_else(|| application_name.clone()),
            application_name,
            stream_name,
            stream_arn,
            region: text(props, "regionName"),
            kinesis_endpoint: text(props, "kinesisEndpoint"),
            dynamodb_endpoint: text(props, "dynamoDBEndpoint"),
            worker_id: text(props, "workerId"),
            initial_position,
            failover_time: millis("failoverTimeMillis", 10_000)?,
            max_records: number(props, "maxRecords")?.unwrap_or(10_000),
            idle_time_between_reads: millis("idleTimeBetweenReadsInMillis", 1_000)?,
            max_leases_for_worker: number(props, "maxLeasesForWorker")?,
            max_leases_to_steal_at_one_time: number(props, "maxLeasesToStealAtOneTime")?
                .unwrap_or(1),
            retrieval_mode,
            timeout: number::<u64>(props, "timeoutInSeconds")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            shutdown_grace: millis("shutdownGraceMillis", 5_000)?,
            shard_sync_interval: millis("shardSyncIntervalMillis", 60_000)?,
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
}
