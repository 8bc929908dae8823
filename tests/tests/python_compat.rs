//! Independent clients against the emulator: boto3 (through pytest) and the AWS CLI.
//! They fail, never skip, when Python or the packages cannot be installed.

use std::process::Command;

use kcl_integration_tests::python::python_env;
use kcl_integration_tests::{start_emulator, unique_name, workspace_root};

/// Runs one pytest file from `tests/python` against a fresh emulator.
async fn pytest(file: &str) {
    let emulator = start_emulator().await;
    let env = tokio::task::spawn_blocking(python_env).await.unwrap();
    let dir = workspace_root().join("tests").join("python");
    let endpoint = emulator.endpoint_url();
    let file = file.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env.python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &file])
            .current_dir(&dir)
            .env("KCL_EMULATOR_ENDPOINT", endpoint)
            .output()
            .expect("running pytest")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "pytest ran no test:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_kinesis() {
    pytest("test_kinesis_boto3.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_dynamodb() {
    pytest("test_dynamodb_boto3.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_kinesis() {
    let emulator = start_emulator().await;
    let env = tokio::task::spawn_blocking(python_env).await.unwrap();
    let endpoint = emulator.endpoint_url();
    let stream = unique_name("cli");
    let aws = move |args: &[&str]| -> serde_json::Value {
        let output = Command::new(env.bin("aws"))
            .args(args)
            .args(["--endpoint-url", &endpoint, "--output", "json"])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("running the aws CLI");
        assert!(
            output.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if output.stdout.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&output.stdout).expect("CLI prints JSON")
        }
    };
    tokio::task::spawn_blocking(move || {
        aws(&[
            "kinesis",
            "create-stream",
            "--stream-name",
            &stream,
            "--shard-count",
            "1",
        ]);
        aws(&["kinesis", "wait", "stream-exists", "--stream-name", &stream]);
        let put = aws(&[
            "kinesis",
            "put-record",
            "--stream-name",
            &stream,
            "--partition-key",
            "k",
            "--data",
            "aGVsbG8=",
        ]);
        assert_eq!(put["ShardId"], "shardId-000000000000");
        let it = aws(&[
            "kinesis",
            "get-shard-iterator",
            "--stream-name",
            &stream,
            "--shard-id",
            "shardId-000000000000",
            "--shard-iterator-type",
            "TRIM_HORIZON",
        ]);
        let records = aws(&[
            "kinesis",
            "get-records",
            "--shard-iterator",
            it["ShardIterator"].as_str().unwrap(),
        ]);
        assert_eq!(
            records["Records"][0]["SequenceNumber"],
            put["SequenceNumber"]
        );
        let listed = aws(&["kinesis", "list-streams"]);
        assert!(listed["StreamNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == &stream));
        aws(&["kinesis", "delete-stream", "--stream-name", &stream]);
    })
    .await
    .unwrap();
}
