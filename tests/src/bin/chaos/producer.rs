//! The producer a chaos container runs: rounds of PutRecords with one record per key, the next
//! record of a key only once the previous one is acknowledged, so each key's records are in
//! counter order in the stream. Every acknowledged record goes to the log with its shard and
//! sequence number. A key whose record failed (or whose whole request failed) sends the same
//! counter again: a write whose acknowledgement was lost shows up as a producer duplicate.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::logs::{now_ms, payload, Ack, AppendLog};

/// `chaos producer`.
#[derive(Debug, clap::Args)]
pub struct ProducerArgs {
    /// Kinesis endpoint.
    #[arg(long)]
    endpoint: String,
    /// Stream to write.
    #[arg(long)]
    stream: String,
    /// The acknowledgement log.
    #[arg(long)]
    log: PathBuf,
    /// Number of partition keys.
    #[arg(long, default_value_t = 32)]
    keys: usize,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
}

pub async fn run(args: ProducerArgs) -> anyhow::Result<()> {
    let log = AppendLog::open(&args.log)?;
    let kinesis = kcl_emulator::testcontainers::kinesis_client(&args.endpoint);
    let keys: Vec<String> = (0..args.keys).map(|k| format!("k{k}")).collect();
    let mut next_counter = vec![0u64; keys.len()];
    let stop = tokio::spawn(crate::worker::terminate_signal());
    let mut rounds = tokio::time::interval(Duration::from_millis(args.interval_ms));
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut acknowledged, mut failed_calls) = (0u64, 0u64);
    while !stop.is_finished() {
        rounds.tick().await;
        let entries: Vec<PutRecordsRequestEntry> = keys
            .iter()
            .zip(&next_counter)
            .map(|(key, counter)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(payload(key, *counter)))
                    .build()
                    .expect("partition key and data are set")
            })
            .collect();
        let call = kinesis
            .put_records()
            .stream_name(&args.stream)
            .set_records(Some(entries))
            .send();
        // A call stuck on a dead connection must not stop the producer for long.
        let output = match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(output)) => output,
            Ok(Err(_)) | Err(_) => {
                failed_calls += 1;
                continue;
            }
        };
        let acked_at = now_ms();
        let mut text = String::new();
        for (index, result) in output.records().iter().enumerate() {
            let (Some(shard), Some(sequence)) = (result.shard_id(), result.sequence_number())
            else {
                continue; // throttled or failed: the same counter goes again next round
            };
            text.push_str(
                &Ack {
                    time_ms: acked_at,
                    key: keys[index].clone(),
                    counter: next_counter[index],
                    shard: shard.to_owned(),
                    sequence: sequence.to_owned(),
                }
                .line(),
            );
            next_counter[index] += 1;
            acknowledged += 1;
        }
        log.append(&text)?;
    }
    eprintln!("producer stopped: {acknowledged} records acknowledged, {failed_calls} calls failed");
    Ok(())
}
