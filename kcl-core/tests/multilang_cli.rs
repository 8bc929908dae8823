//! The `kcl-multilang` binary's start-up checks: a properties file it cannot use is a clear
//! error naming the file and the key, before anything connects anywhere.
#![cfg(feature = "daemon")]

use std::process::Command;

fn run_with(properties: &str) -> (i32, String) {
    run_logged(properties, "off")
}

/// Runs the daemon on `properties` with the log filter `log`; returns its exit code and stderr.
fn run_logged(properties: &str, log: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.properties");
    std::fs::write(&file, properties).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kcl-multilang"))
        .arg("--properties")
        .arg(&file)
        .env("RUST_LOG", log)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_kcl-multilang"))
        .args(["--properties", "/nonexistent/app.properties"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/app.properties"), "{stderr}");
}

#[test]
fn a_missing_required_key_is_named() {
    let (code, stderr) = run_with("streamName = s\napplicationName = a\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("executableName"), "{stderr}");
}

#[test]
fn an_invalid_value_is_named_with_the_key() {
    let (code, stderr) = run_with(
        "executableName = python3 app.py\nstreamName = s\napplicationName = a\nfailoverTimeMillis = soon\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("failoverTimeMillis"), "{stderr}");
    assert!(stderr.contains("soon"), "{stderr}");
}

/// The KCL 3 keys of the Java daemon's properties: none called unknown; the coordination keys
/// are honoured (not named at all), the keys of Java 3.0-3.4's separate tables are named at
/// debug level as not needed (every KCL 3 item lives in the lease table).
#[test]
fn kcl3_keys_are_honoured_or_named_as_not_needed() {
    const KCL3_KEYS: &[&str] = &[
        "failoverTimeMillis",
        "leaseAssignmentIntervalMillis",
        "clientVersionConfig",
        "migrateAllEntitiesToLeaseTable",
        "tableMigrationCompleteBakeTimeSeconds",
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
    ];
    // No executableName: the daemon reports the keys, then stops before connecting anywhere.
    let mut properties = "streamName = s\napplicationName = a\n".to_owned();
    for key in KCL3_KEYS {
        properties.push_str(&format!("{key} = 1\n"));
    }
    // The graceful handoff keys are honoured (steals are handoffs).
    properties.push_str(
        "isGracefulLeaseHandoffEnabled = false\ngracefulLeaseHandoffTimeoutMillis = 5000\n",
    );
    let (code, stderr) = run_logged(&properties, "debug");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("executableName"), "{stderr}");
    assert!(!stderr.contains("unknown property"), "{stderr}");
    // Keys of Java 3.0-3.4's separate tables and of the migration into the lease table.
    const NOT_NEEDED: &[&str] = &[
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
    for key in KCL3_KEYS {
        let named = format!("key=\"{key}\"");
        let not_needed = NOT_NEEDED.contains(key);
        let says = |words: &str| {
            stderr
                .lines()
                .any(|l| l.contains(&named) && l.contains(words))
        };
        if not_needed {
            assert!(says("not needed by this daemon"), "{key}:\n{stderr}");
        } else {
            assert!(
                !says("no effect") && !says("not needed"),
                "{key} is honoured:\n{stderr}"
            );
        }
    }
    for key in [
        "isGracefulLeaseHandoffEnabled",
        "gracefulLeaseHandoffTimeoutMillis",
    ] {
        let named = format!("key=\"{key}\"");
        assert!(
            !stderr.lines().any(|l| l.contains(&named)),
            "{key} is honoured, not reported:\n{stderr}"
        );
    }
}
