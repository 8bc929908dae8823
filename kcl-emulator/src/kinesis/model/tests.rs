use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { key: u8, size: usize },
    Split,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), 0usize..64).prop_map(|(key, size)| Op::Append { key, size }),
        1 => Just(Op::Split),
        2 => Just(Op::Reopen),
    ]
}

fn durable_config(dir: &std::path::Path) -> Config {
    let mut config = Config::embedded();
    config.data_dir = Some(dir.to_owned());
    config.create_delay = std::time::Duration::ZERO;
    config.update_delay = std::time::Duration::ZERO;
    config
}

/// Every record of every shard, as (shard id, counter, key, data).
fn contents(store: &KinesisStore<NoDependents>) -> Vec<(String, u64, String, Vec<u8>)> {
    let stream = store.stream("model").unwrap();
    let state = stream.lock();
    let mut all = Vec::new();
    for shard in &state.shards {
        let log = shard.lock();
        for r in &log.records {
            all.push((
                shard.id.clone(),
                r.counter,
                r.partition_key.to_string(),
                r.data.to_vec(),
            ));
        }
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The durable store read back after any number of reopens equals a plain model of
    /// what was appended, and sequence numbers keep growing across restarts and reshards.
    #[test]
    fn durable_store_matches_the_model_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = durable_config(dir.path());
        let mut store = KinesisStore::<NoDependents>::open(&config).unwrap();
        store.create_stream("model", 2, StreamSettings::new(0, 0, CapacityMode::Provisioned)).unwrap();
        let mut model: Vec<(String, u64, String, Vec<u8>)> = Vec::new();
        let mut highest = 0;
        for op in ops {
            match op {
                Op::Append { key, size } => {
                    let stream = store.stream("model").unwrap();
                    let key = format!("key-{key}");
                    let data = vec![size as u8; size];
                    let record = NewRecord { hash: keys::partition_key_hash(&key), partition_key: Arc::from(key.as_str()), data: Bytes::from(data.clone()) };
                    let outcome = runtime.block_on(store.append(&stream, vec![record])).unwrap();
                    let PutOutcome::Stored { shard_id, sequence_number } = &outcome[0] else { panic!("rejected") };
                    let counter = SequenceParts::parse(sequence_number).unwrap().counter;
                    prop_assert!(counter > highest, "sequence numbers only grow");
                    highest = counter;
                    model.push((shard_id.clone(), counter, key, data));
                }
                Op::Split => {
                    let stream = store.stream("model").unwrap();
                    let target = stream.lock().open.first().map(|s| (s.id.clone(), s.start_hash, s.end_hash));
                    if let Some((id, start, end)) = target {
                        if end > start + 1 {
                            stream.lock().settings.updating_until = None;
                            store.split_shard(&stream, &id, start + (end - start) / 2).unwrap();
                            stream.lock().settings.updating_until = None;
                        }
                    }
                }
                Op::Reopen => {
                    drop(store);
                    store = KinesisStore::open(&config).unwrap();
                }
            }
        }
        drop(store);
        let store = KinesisStore::<NoDependents>::open(&config).unwrap();
        let mut expected = model;
        expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut actual = contents(&store);
        actual.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        prop_assert_eq!(actual, expected);
    }
}

/// A deleted stream's data goes with it, and data a crash or a failed removal left behind is
/// removed at the next start; the live streams' data and the metadata files are untouched.
#[test]
fn a_deleted_streams_data_is_removed_even_when_a_crash_left_it_behind() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = durable_config(dir.path());
    config.delete_delay = std::time::Duration::ZERO;
    let root = dir.path().join("kinesis");
    let settings = || StreamSettings::new(0, 0, CapacityMode::Provisioned);
    let store = KinesisStore::<NoDependents>::open(&config).unwrap();
    for name in ["model", "doomed"] {
        store.create_stream(name, 1, settings()).unwrap();
        let stream = store.stream(name).unwrap();
        let record = NewRecord {
            hash: keys::partition_key_hash("k"),
            partition_key: Arc::from("k"),
            data: Bytes::from_static(b"data"),
        };
        runtime
            .block_on(store.append(&stream, vec![record]))
            .unwrap();
    }
    let doomed = store.stream("doomed").unwrap();
    let doomed_dir = doomed.dir.clone().unwrap();
    assert!(doomed_dir.is_dir());
    store.delete_stream(&doomed, false).unwrap();
    store.purge_deleted();
    assert!(!doomed_dir.exists(), "purged with its stream");
    drop((doomed, store));

    // As a crash between the saved deletion and the removal leaves it.
    let leftover = root.join("doomed-99").join("shardId-000000000000");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000001.seg"), b"records").unwrap();
    let store = KinesisStore::<NoDependents>::open(&config).unwrap();
    assert!(!root.join("doomed-99").exists(), "swept at the start");
    assert_eq!(
        contents(&store).len(),
        1,
        "the live stream keeps its record"
    );
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("meta"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![format!("model-{}", store.stream("model").unwrap().epoch)]
    );
}
