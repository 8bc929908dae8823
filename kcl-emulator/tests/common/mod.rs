//! Raw HTTP helpers shared by the wire-level tests: requests in either wire format, sent to an
//! embedded emulator over HTTP/1.1, and their replies.
#![allow(dead_code)] // each test binary uses its own subset

use bytes::Bytes;
use ciborium::Value as Cbor;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kcl_emulator::EmbeddedEmulator;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; CBOR bodies (errors to CBOR requests are CBOR too) are translated.
    pub fn json(&self) -> serde_json::Value {
        if self.content_type.contains("cbor") {
            return ciborium::from_reader(&self.body[..])
                .unwrap_or_else(|e| panic!("{e}: {:?}", self.body));
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

pub fn request(target: Option<&str>, content_type: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/")
        .header("content-type", content_type)
        .header("host", "127.0.0.1");
    if let Some(target) = target {
        builder = builder.header("x-amz-target", target);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

pub async fn send_http1(emulator: &EmbeddedEmulator, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(emulator.local_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    collect(sender.send_request(req).await.unwrap()).await
}

pub async fn collect(response: http::Response<hyper::body::Incoming>) -> Reply {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

pub fn json(target: &str, body: serde_json::Value) -> Request<Full<Bytes>> {
    request(
        Some(target),
        "application/x-amz-json-1.1",
        serde_json::to_vec(&body).unwrap(),
    )
}

pub fn cbor(target: &str, body: Cbor) -> Request<Full<Bytes>> {
    let mut bytes = Vec::new();
    ciborium::into_writer(&body, &mut bytes).unwrap();
    request(Some(target), "application/x-amz-cbor-1.1", bytes)
}

pub fn cbor_map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Cbor::Text(k.to_owned()), v))
            .collect(),
    )
}

pub fn cbor_get<'a>(value: &'a Cbor, key: &str) -> &'a Cbor {
    value
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {value:?}"))
}

pub async fn active_stream(emulator: &EmbeddedEmulator, name: &str) {
    let created = send_http1(
        emulator,
        json(
            "Kinesis_20131202.CreateStream",
            serde_json::json!({"StreamName": name, "ShardCount": 1}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    wait_until_active(emulator, name).await;
}

pub async fn wait_until_active(emulator: &EmbeddedEmulator, name: &str) {
    for _ in 0..200 {
        let summary = send_http1(
            emulator,
            json(
                "Kinesis_20131202.DescribeStreamSummary",
                serde_json::json!({"StreamName": name}),
            ),
        )
        .await
        .json();
        if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

/// Sends Kinesis operation `operation` with a JSON body.
pub async fn call(emulator: &EmbeddedEmulator, operation: &str, body: serde_json::Value) -> Reply {
    send_http1(
        emulator,
        json(&format!("Kinesis_20131202.{operation}"), body),
    )
    .await
}

/// Sends Kinesis operation `operation`, which must succeed, and returns its output.
pub async fn ok(
    emulator: &EmbeddedEmulator,
    operation: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = call(emulator, operation, body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{operation}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// Starts the emulator binary on a free port with `data_dir`; returns the child and its endpoint.
pub async fn spawn_emulator(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kcl-emulator"))
        .args([
            "--port",
            "0",
            "--create-delay-ms",
            "0",
            "--update-delay-ms",
            "0",
            "--log",
            "warn",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning kcl-emulator");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("emulator announces its endpoint")
        .expect("reading stdout")
        .expect("a line");
    let endpoint = line
        .rsplit(' ')
        .next()
        .expect("endpoint at the end")
        .to_owned();
    (child, endpoint)
}
