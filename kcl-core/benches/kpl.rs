//! Micro-benchmark of KPL de-aggregation: one aggregated record of 100 sub-records of 100
//! bytes, split back into user records. `cargo bench -p kcl-core`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kcl_core::kpl;
use kcl_core::KinesisClientRecord;

fn deaggregation(c: &mut Criterion) {
    let sub_records: Vec<(String, Option<String>, Vec<u8>)> = (0..100)
        .map(|i| (format!("key-{i}"), None, vec![b'x'; 100]))
        .collect();
    let aggregated = KinesisClientRecord::from(
        &aws_sdk_kinesis::types::Record::builder()
            .sequence_number("49000000000000000000000000000000000000000000000000000001")
            .partition_key("aggregate")
            .data(aws_sdk_kinesis::primitives::Blob::new(kpl::aggregate(
                &sub_records,
            )))
            .build()
            .expect("required members are set"),
    );
    let mut group = c.benchmark_group("KPL");
    group.throughput(Throughput::Elements(100));
    group.bench_function("de-aggregate 100 x 100 B", |b| {
        b.iter(|| kpl::deaggregate(black_box(aggregated.clone()), None))
    });
    group.bench_function("aggregate 100 x 100 B", |b| {
        b.iter(|| kpl::aggregate(black_box(&sub_records)))
    });
    group.finish();
}

criterion_group!(benches, deaggregation);
criterion_main!(benches);
