use super::*;
use crate::kinesis::ext::channels::model::S3Storage;

#[test]
fn arns_are_checked_against_the_service_patterns() {
    assert!(is_role_arn("arn:aws:iam::123456789012:role/delivery-role"));
    assert!(is_role_arn(
        "arn:aws-cn:iam::123456789012:role/path/to/role"
    ));
    assert!(!is_role_arn("arn:aws:iam::12345:role/r"));
    assert!(!is_role_arn("arn:aws:iam:us-east-1:123456789012:role/r"));
    assert!(!is_role_arn("arn:aws:iam::123456789012:user/r"));
    assert!(is_bucket_arn("arn:aws:s3:::my.bucket-1"));
    assert!(!is_bucket_arn("arn:aws:s3:::ab"));
    assert!(!is_bucket_arn("arn:aws:s3:::UPPER"));
    assert!(is_table_bucket_arn(
        "arn:aws:s3tables:us-east-1:123456789012:bucket/tables_1"
    ));
    assert!(!is_table_bucket_arn(
        "arn:aws:s3tables::123456789012:bucket/tables"
    ));
    assert!(is_schema_arn(
        "arn:aws:glue:us-east-1:123456789012:schema/registry/orders.v1"
    ));
    assert!(!is_schema_arn(
        "arn:aws:glue:us-east-1:123456789012:schema/only-one"
    ));
}

#[test]
fn s3_defaults_are_filled_in() {
    let s3 = s3_destination(S3Destination {
        storage_configuration: Some(S3Storage {
            bucket_arn: Some("arn:aws:s3:::dest".to_owned()),
            expected_bucket_owner: Some("123456789012".to_owned()),
            compression_type: Some("GZIP".to_owned()),
            ..S3Storage::default()
        }),
        ..S3Destination::default()
    })
    .unwrap();
    assert_eq!(s3.data_freshness_in_seconds, Some(300));
    let storage = s3.storage_configuration.unwrap();
    assert_eq!(storage.storage_class.as_deref(), Some("STANDARD"));
    let dlq = s3.dead_letter_queue.unwrap();
    assert_eq!(dlq.bucket_arn.as_deref(), Some("arn:aws:s3:::dest"));
    assert_eq!(dlq.expected_bucket_owner.as_deref(), Some("123456789012"));
}

#[test]
fn record_formats_must_suit_the_destination() {
    let s3 = Destination::S3(S3Destination::default());
    let tables = Destination::S3Tables(S3TablesDestination::default());
    let format = |f: &str, schema: bool| RecordConfig {
        record_format_type: Some(f.to_owned()),
        gsr_schema_arn: schema.then(|| "arn".to_owned()),
    };
    assert!(check_format_for(&format("BYTE_ARRAY", false), &s3).is_ok());
    assert!(check_format_for(&format("GSR_JSON", true), &s3).is_err());
    assert!(check_format_for(&format("GSR_JSON", true), &tables).is_ok());
    assert!(check_format_for(&format("JSON", false), &tables).is_err());
    assert!(check_format_for(&format("STRING", true), &tables).is_err());
}
