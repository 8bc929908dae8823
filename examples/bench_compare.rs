//! Runs the emulator benchmark suite side by side against the Kinesis servers a user would
//! otherwise pick — `ferrokinesis` (crates.io) and `moto_server` (PyPI) — in one run on one
//! machine, and prints every row with our figure / their figure.
//!
//! ```sh
//! cargo run --release --example bench_compare            # installs the peers under target/peers
//! cargo run --release --example bench_compare -- --quick # tiny sizes
//! ```
//! Peers are installed once into `target/peers/` (`cargo install ferrokinesis --root ...` and a
//! Python venv with `moto[server]`), started on free 127.0.0.1 ports, and stopped at the end.

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kcl_emulator::{Config, EmbeddedEmulator};

#[derive(Debug, Parser)]
struct Args {
    /// How long each ingest run lasts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Tiny sizes and sub-second runs.
    #[arg(long)]
    quick: bool,
    /// Leave out ferrokinesis.
    #[arg(long)]
    skip_ferrokinesis: bool,
    /// Leave out moto_server.
    #[arg(long)]
    skip_moto: bool,
}

/// A peer server process, killed on drop.
struct Peer {
    name: &'static str,
    endpoint: String,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("peers")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    eprintln!("{what} ...");
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start {command:?}"))?;
    anyhow::ensure!(status.success(), "{what} failed: {status}");
    Ok(())
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("nothing listened on 127.0.0.1:{port} within 30 s")
}

async fn start_ferrokinesis() -> anyhow::Result<Peer> {
    let root = peers_dir().join("ferrokinesis");
    let binary = root.join("bin").join("ferrokinesis");
    if !binary.exists() {
        run(
            Command::new("cargo")
                .args(["install", "--quiet", "ferrokinesis", "--root"])
                .arg(&root),
            "installing ferrokinesis from crates.io",
        )?;
    }
    let port = free_port()?;
    let child = Command::new(&binary)
        .args([
            "--port",
            &port.to_string(),
            "--create-stream-ms",
            "0",
            "--update-stream-ms",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ferrokinesis")?;
    let peer = Peer {
        name: "ferrokinesis",
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
    };
    wait_listening(port).await?;
    Ok(peer)
}

async fn start_moto() -> anyhow::Result<Peer> {
    let venv = peers_dir().join("moto-venv");
    let server = venv.join("bin").join("moto_server");
    if !server.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating a venv for moto",
        )?;
        run(
            Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "moto[server]"]),
            "installing moto[server] from PyPI",
        )?;
    }
    let port = free_port()?;
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting moto_server")?;
    let peer = Peer {
        name: "moto_server",
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
    };
    wait_listening(port).await?;
    Ok(peer)
}

/// Our figure over theirs: throughput rows compare records/s, latency rows compare p50 (their
/// latency over ours, so above 1 always means we are better).
fn ratio(ours: &bench::Row, theirs: &bench::Row) -> Option<f64> {
    match (ours.records_per_sec, theirs.records_per_sec) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => match (ours.p50_ms, theirs.p50_ms) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        },
    }
}

/// Workload names without the run-specific counts, to pair rows across targets.
fn workload_key(row: &bench::Row) -> String {
    row.workload
        .split(" (")
        .next()
        .unwrap_or(&row.workload)
        .to_owned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workload = bench::Workload {
        seconds: if args.quick { 0.3 } else { args.seconds },
        shards: if args.quick { 2 } else { 4 },
        record_size: 100,
        batch: 500,
        latency_samples: if args.quick { 20 } else { 200 },
    };
    let mut rows = Vec::new();
    let ours = EmbeddedEmulator::start(Config::embedded()).await?;
    bench::run_suite(&ours.endpoint_url(), "kcl-emulator", &workload, &mut rows).await?;
    ours.shutdown().await;
    let mut peers = Vec::new();
    if !args.skip_ferrokinesis {
        peers.push(start_ferrokinesis().await?);
    }
    if !args.skip_moto {
        peers.push(start_moto().await?);
    }
    for peer in &peers {
        // A peer that lacks an operation still gets its other rows measured.
        if let Err(err) = bench::run_suite(&peer.endpoint, peer.name, &workload, &mut rows).await {
            eprintln!("{}: {err:#}", peer.name);
        }
    }
    drop(peers);
    bench::print_table("emulator comparison", &rows);

    println!("\n| workload | peer | kcl-emulator / peer |");
    println!("|---|---|---:|");
    for ours in rows.iter().filter(|r| r.target == "kcl-emulator") {
        for theirs in rows
            .iter()
            .filter(|r| r.target != "kcl-emulator" && workload_key(r) == workload_key(ours))
        {
            let value = ratio(ours, theirs).map_or_else(|| "-".to_owned(), |r| format!("{r:.1}x"));
            println!("| {} | {} | {value} |", workload_key(ours), theirs.target);
        }
    }
    Ok(())
}
