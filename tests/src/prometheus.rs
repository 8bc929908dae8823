//! Reading a Prometheus endpoint over plain HTTP, as a scraper would.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `/metrics` from `addr` and returns the body, or `None` while nothing answers 200.
pub async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let (status, body) = get(addr, "/metrics").await?;
    (status == 200).then_some(body)
}

/// GETs `path` from `addr` over plain HTTP/1.1: the status code and the body, or `None` when
/// nothing answers.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.ok()?;
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of an unlabelled sample `name` in a scrape.
pub fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A free local address to serve metrics on.
pub fn free_local_addr() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address")
}
