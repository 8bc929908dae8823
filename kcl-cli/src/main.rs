//! `kcl`: operating a KCL fleet from the lease table and the stream.
//!
//! ```sh
//! kcl leases my-app                        # who holds what, checkpoints, KCL 3 items
//! kcl lag my-app --stream orders           # records and time behind, per shard
//! kcl checkpoint set my-app shardId-000000000001 --stream orders --to trim-horizon
//! kcl checkpoint rewind my-app --stream orders --to 2024-05-01T10:00:00Z --force
//! kcl cleanup my-app --stream orders       # leases of expired, finished shards
//! kcl drain my-app worker-7                # hand a worker's leases off before maintenance
//! kcl fleet my-app --stream orders --watch # live view
//! ```
//!
//! Works on lease tables of this library and of the Java KCL 2.x/3.x. Credentials and region
//! come from the default AWS chain; `--endpoint` points at an emulator.
//!
//! # Layout
//! - `aws`: clients, and SDK failures as messages an operator can act on.
//! - `table`: scanning the lease table; leases and KCL 3 items each as their own kind.
//! - `kinesis`: shards, backlog reads, timestamps turned into checkpoints.
//! - `observe`: ages and lease moves from watching the table; column layout.
//! - `commands`: the subcommands.

mod aws;
mod commands;
mod kinesis;
mod observe;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kcl",
    version,
    about = "Operate a Kinesis Client Library fleet: leases, lag, checkpoint resets, cleanup, draining a worker, a live view"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct Global {
    /// Endpoint URL for Kinesis and DynamoDB (an emulator); default: AWS.
    #[arg(long, global = true, env = "KCL_ENDPOINT")]
    endpoint: Option<String>,
    /// AWS region; default: the AWS chain (AWS_REGION, profile).
    #[arg(long, global = true)]
    region: Option<String>,
    /// The lease table, when it is not named after the application.
    #[arg(long, global = true)]
    table: Option<String>,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One row per lease: owner, counter, checkpoint, lineage, ages; KCL 3 items apart.
    Leases {
        /// The application (its lease table).
        app: String,
        /// Watch the table this long to see renewals and checkpoints (`0s`: one scan).
        #[arg(long, default_value = "4s", value_parser = parse_duration)]
        sample: Duration,
    },
    /// Per shard, how far the checkpoint is behind the shard's newest record.
    Lag {
        /// The application.
        app: String,
        #[command(flatten)]
        stream: StreamArgs,
        /// A shard is stuck when records wait after its checkpoint and the oldest of them
        /// arrived longer ago than this.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        stuck_after: Duration,
        /// Read at most this many records per shard (lag beyond shows as a lower bound).
        #[arg(long, default_value_t = 10_000)]
        max_records: u64,
    },
    /// Move checkpoints: one shard (`set`) or every shard back to a time (`rewind`).
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Delete leases of shards that no longer exist and were processed to their end.
    Cleanup {
        /// The application.
        app: String,
        #[command(flatten)]
        stream: StreamArgs,
        /// Show what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Drain a worker before maintenance: the KCL 3 leader hands its leases to other workers
    /// (gracefully: each shard is checkpointed before it moves) and gives it no new ones.
    Drain {
        /// The application.
        app: String,
        /// The worker id (as in `kcl leases`).
        worker: String,
        /// Clear the drain flag: the leader may give the worker leases again.
        #[arg(long)]
        undo: bool,
        /// Set the flag and return, without waiting for the leases to move.
        #[arg(long, conflicts_with = "undo")]
        no_wait: bool,
        /// Give up waiting after this long (the flag stays set).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// The fleet at a glance: workers, leases, records/s, lag, leader, recent lease moves.
    Fleet {
        /// The application.
        app: String,
        #[command(flatten)]
        stream: StreamArgs,
        /// Redraw every `--interval` until interrupted.
        #[arg(long, conflicts_with = "once")]
        watch: bool,
        /// Render one frame and exit (the default without `--watch`).
        #[arg(long)]
        once: bool,
        /// Time between frames.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        interval: Duration,
        /// Read at most this many records per shard and frame.
        #[arg(long, default_value_t = 1_000)]
        max_records: u64,
    },
}

#[derive(Debug, Args)]
struct StreamArgs {
    /// The stream (name or ARN); needed unless lease keys name their streams (multi-stream).
    #[arg(long)]
    stream: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// Set one shard's checkpoint.
    Set {
        /// The application.
        app: String,
        /// The lease key (the shard id, or a multi-stream key).
        shard: String,
        #[command(flatten)]
        stream: StreamArgs,
        /// `trim-horizon`, `latest`, `at-timestamp T` (RFC 3339 or epoch seconds), or
        /// `sequence N`.
        #[arg(long, num_args = 1..=2, required = true, value_names = ["POSITION", "VALUE"])]
        to: Vec<String>,
        /// Reset an owned lease: take it (its owner sees the lease lost and cannot checkpoint
        /// over the reset), write the checkpoint, release it.
        #[arg(long)]
        force: bool,
    },
    /// Move every shard's checkpoint back to a time, to replay from there.
    Rewind {
        /// The application.
        app: String,
        #[command(flatten)]
        stream: StreamArgs,
        /// The time, RFC 3339 or epoch seconds.
        #[arg(long)]
        to: String,
        /// Reset owned leases through the fenced path (see `set --force`).
        #[arg(long)]
        force: bool,
    },
}

/// `500ms`, `4s`, `5m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text} (e.g. 500ms, 4s, 5m, 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit in {text} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kcl: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
