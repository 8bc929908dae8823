//! Connection hygiene: clients that connect and then stall (silent, half a request, headers
//! trickled a byte at a time, a body that never finishes) are disconnected, so they cannot hold
//! the connection slots that other clients need.

use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use kcl_emulator::{Config, EmbeddedEmulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds each wait below, so a server that never closes a stuck connection fails the test
/// instead of hanging it; the timeouts under test are far shorter.
const NEVER: Duration = Duration::from_secs(30);

fn short_timeouts() -> Config {
    let mut config = Config::embedded();
    config.header_read_timeout = Duration::from_millis(300);
    config.idle_timeout = Duration::from_millis(600);
    config
}

fn kinesis(emulator: &EmbeddedEmulator) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .endpoint_url(emulator.endpoint_url())
            .build(),
    )
}

async fn connect_and_send(emulator: &EmbeddedEmulator, bytes: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(emulator.local_addr()).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    socket
}

/// Reads until the server closes the connection (end of stream or reset).
async fn closed_by_server(mut socket: TcpStream, what: &str) {
    let mut buffer = [0u8; 1024];
    let drained = tokio::time::timeout(NEVER, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the server kept the {what} connection open"
    );
}

#[tokio::test]
async fn stalled_clients_are_disconnected_while_others_are_served() {
    let emulator = EmbeddedEmulator::start(short_timeouts()).await.unwrap();
    let silent = connect_and_send(&emulator, b"").await;
    // Fewer bytes than it takes to tell HTTP/1.1 from h2c.
    let undecided = connect_and_send(&emulator, b"POS").await;
    let half_headers = connect_and_send(
        &emulator,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n",
    )
    .await;
    let half_body = connect_and_send(
        &emulator,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
          Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{\"Li",
    )
    .await;
    // Keeps bytes moving, so only the header-read timeout can end it.
    let mut trickler = connect_and_send(&emulator, b"POST / HTTP/1.1\r\n").await;
    let trickling = tokio::spawn(async move {
        loop {
            if trickler.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let kinesis = kinesis(&emulator);
    kinesis.list_streams().send().await.unwrap();

    closed_by_server(silent, "silent").await;
    closed_by_server(undecided, "undecided").await;
    closed_by_server(half_headers, "half-headers").await;
    closed_by_server(half_body, "half-body").await;
    let stopped = tokio::time::timeout(NEVER, trickling).await;
    assert!(
        stopped.is_ok(),
        "the server kept accepting header bytes forever"
    );
    // A fresh client is still served after all that.
    kinesis.list_streams().send().await.unwrap();
}

#[tokio::test]
async fn a_full_connection_cap_admits_new_clients_once_stuck_ones_time_out() {
    let mut config = short_timeouts();
    config.max_connections = 3;
    let emulator = EmbeddedEmulator::start(config).await.unwrap();
    let mut stuck = Vec::new();
    for _ in 0..3 {
        stuck.push(connect_and_send(&emulator, b"POST / HTTP/1.1\r\nHost: localhost\r\n").await);
    }
    // The cap is full: this client waits in the listen backlog until a stuck one is dropped.
    let served = tokio::time::timeout(NEVER, kinesis(&emulator).list_streams().send()).await;
    assert!(
        served.is_ok(),
        "stuck connections kept a new client out for good"
    );
    served.unwrap().unwrap();
    drop(stuck);
}
