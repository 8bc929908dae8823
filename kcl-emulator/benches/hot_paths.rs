//! Micro-benchmarks of the emulator's hot paths: request decode and response encode (JSON and
//! CBOR), sequence-number and hash-key arithmetic, and the segment log's frame encoding and
//! decoding. `cargo bench -p kcl-emulator`.

use std::hint::black_box;

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kcl_emulator::bench_support as hot;

/// A PutRecords request body of 500 records of 100 bytes, as the SDKs send it.
fn put_records_body(cbor: bool) -> Vec<u8> {
    let data = vec![b'x'; 100];
    if cbor {
        let records: Vec<ciborium::Value> = (0..500)
            .map(|i| {
                ciborium::Value::Map(vec![
                    ("Data".into(), ciborium::Value::Bytes(data.clone())),
                    ("PartitionKey".into(), format!("key-{i}").into()),
                ])
            })
            .collect();
        let body = ciborium::Value::Map(vec![
            ("StreamName".into(), "bench".into()),
            ("Records".into(), ciborium::Value::Array(records)),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&body, &mut out).expect("CBOR encodes");
        out
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
        let records: Vec<serde_json::Value> = (0..500)
            .map(|i| serde_json::json!({"Data": encoded, "PartitionKey": format!("key-{i}")}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"StreamName": "bench", "Records": records}))
            .expect("JSON encodes")
    }
}

fn protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("PutRecords 500 x 100 B");
    group.throughput(Throughput::Elements(500));
    let response = hot::put_records_response(500);
    for (name, cbor) in [("json", false), ("cbor", true)] {
        let body = put_records_body(cbor);
        group.bench_function(format!("decode request ({name})"), |b| {
            b.iter(|| hot::decode_put_records(black_box(&body), cbor))
        });
        group.bench_function(format!("encode response ({name})"), |b| {
            b.iter(|| hot::encode_put_records_response(black_box(&response), cbor))
        });
    }
    group.finish();
}

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    let sequence = hot::format_sequence_number(123_456_789, 7, 1_700_000_000_000);
    group.bench_function("sequence number format", |b| {
        b.iter(|| hot::format_sequence_number(black_box(123_456_789), 7, 1_700_000_000_000))
    });
    group.bench_function("sequence number parse", |b| {
        b.iter(|| hot::parse_sequence_number(black_box(&sequence)))
    });
    group.bench_function("partition key hash (MD5)", |b| {
        b.iter(|| hot::partition_key_hash(black_box("user-1234567")))
    });
    group.finish();
}

fn segment_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment log 500 x 100 B");
    group.throughput(Throughput::Elements(500));
    group.bench_function("append (encode frames)", |b| {
        b.iter(|| hot::encode_log_frames(black_box(500), 100))
    });
    let frames = hot::encode_log_frames(500, 100);
    group.bench_function("range read (decode frames)", |b| {
        b.iter(|| hot::decode_log_frames(black_box(&frames)))
    });
    group.finish();
}

criterion_group!(benches, protocol, keys, segment_log);
criterion_main!(benches);
