//! The metadata row: how long CreateStream takes as streams accumulate. In durable mode every
//! metadata change is made durable before it is answered, so this shows whether that cost grows
//! with the number of streams the emulator holds.

use std::time::Instant;

use super::{client, percentile, Row};

/// Creates one-shard streams one after another until `counts`' largest is reached, and
/// returns a row per entry of `counts` with the latency of the `window` creates leading up to
/// that many streams (the stream count itself included).
pub async fn create_stream_latency(
    endpoint: &str,
    target: &str,
    counts: &[usize],
    window: usize,
) -> anyhow::Result<Vec<Row>> {
    let client = client(endpoint);
    let prefix = super::unique("meta");
    let last = counts.iter().copied().max().unwrap_or(0);
    let mut latencies_ms = Vec::with_capacity(last);
    for n in 1..=last {
        let started = Instant::now();
        client
            .create_stream()
            .stream_name(format!("{prefix}-{n}"))
            .shard_count(1)
            .send()
            .await?;
        latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(counts
        .iter()
        .map(|&count| {
            let mut sample = latencies_ms[count.saturating_sub(window)..count].to_vec();
            sample.sort_by(f64::total_cmp);
            Row {
                workload: format!("CreateStream at {count} streams (last {window})"),
                target: target.to_owned(),
                records_per_sec: None,
                mb_per_sec: None,
                p50_ms: percentile(&sample, 50.0),
                p99_ms: percentile(&sample, 99.0),
                note: None,
            }
        })
        .collect())
}
