//! The `kcl-multilang` binary's start-up checks: a properties file it cannot use is a clear
//! error naming the file and the key, before anything connects anywhere.
#![cfg(feature = "daemon")]

use std::process::Command;

fn run_with(properties: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.properties");
    std::fs::write(&file, properties).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kcl-multilang"))
        .arg("--properties")
        .arg(&file)
        .env("RUST_LOG", "off")
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
