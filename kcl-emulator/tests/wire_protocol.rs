//! The wire level: CBOR (the Java SDK's default), h2c (Java and Node clients), and malformed
//! requests, which get a clear AWS-shaped error while the emulator keeps serving.

mod common;

use bytes::Bytes;
use ciborium::Value as Cbor;
use common::{
    active_stream, cbor, cbor_get, cbor_map, collect, json, request, send_http1, wait_until_active,
    Reply,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kcl_emulator::{Config, EmbeddedEmulator};
use tokio::net::TcpStream;

async fn send_h2c(emulator: &EmbeddedEmulator, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(emulator.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    collect(sender.send_request(req).await.unwrap()).await
}

#[tokio::test]
async fn cbor_round_trip_carries_blobs_and_millisecond_timestamps() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    active_stream(&emulator, "cbor").await;
    let put = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.PutRecord",
            cbor_map(vec![
                ("StreamName", Cbor::Text("cbor".into())),
                ("PartitionKey", Cbor::Text("k".into())),
                ("Data", Cbor::Bytes(vec![0, 1, 2, 255])),
            ]),
        ),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.content_type, "application/x-amz-cbor-1.1");
    let put: Cbor = ciborium::from_reader(&put.body[..]).unwrap();
    let seq = cbor_get(&put, "SequenceNumber")
        .as_text()
        .unwrap()
        .to_owned();

    let iterator = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.GetShardIterator",
            cbor_map(vec![
                ("StreamName", Cbor::Text("cbor".into())),
                ("ShardId", Cbor::Text("shardId-000000000000".into())),
                ("ShardIteratorType", Cbor::Text("AT_SEQUENCE_NUMBER".into())),
                ("StartingSequenceNumber", Cbor::Text(seq.clone())),
            ]),
        ),
    )
    .await;
    let iterator: Cbor = ciborium::from_reader(&iterator.body[..]).unwrap();
    let records = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.GetRecords",
            cbor_map(vec![(
                "ShardIterator",
                cbor_get(&iterator, "ShardIterator").clone(),
            )]),
        ),
    )
    .await;
    let records: Cbor = ciborium::from_reader(&records.body[..]).unwrap();
    let record = &cbor_get(&records, "Records").as_array().unwrap()[0];
    assert_eq!(cbor_get(record, "Data"), &Cbor::Bytes(vec![0, 1, 2, 255]));
    assert_eq!(
        cbor_get(record, "SequenceNumber").as_text(),
        Some(seq.as_str())
    );
    let Cbor::Tag(1, millis) = cbor_get(record, "ApproximateArrivalTimestamp") else {
        panic!("timestamps are tag 1");
    };
    let millis = i128::from(millis.as_integer().expect("integer milliseconds"));
    assert!(
        millis > 1_600_000_000_000,
        "epoch milliseconds, not seconds: {millis}"
    );

    let missing: Cbor = ciborium::from_reader(
        &send_http1(
            &emulator,
            cbor(
                "Kinesis_20131202.DescribeStream",
                cbor_map(vec![("StreamName", Cbor::Text("nope".into()))]),
            ),
        )
        .await
        .body[..],
    )
    .unwrap();
    assert_eq!(
        cbor_get(&missing, "__type").as_text(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn h2c_and_http1_share_the_port() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let over_h2 = send_h2c(
        &emulator,
        json("Kinesis_20131202.ListStreams", serde_json::json!({})),
    )
    .await;
    assert_eq!(over_h2.status, StatusCode::OK);
    assert_eq!(over_h2.json()["StreamNames"], serde_json::json!([]));
    active_stream(&emulator, "h2").await;
    let listed = send_h2c(
        &emulator,
        json("Kinesis_20131202.ListStreams", serde_json::json!({})),
    )
    .await;
    assert_eq!(listed.json()["StreamNames"], serde_json::json!(["h2"]));
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_the_server_keeps_serving() {
    let mut config = Config::embedded();
    config.max_request_bytes = 64 * 1024;
    let emulator = EmbeddedEmulator::start(config).await.unwrap();
    active_stream(&emulator, "s").await;
    let cases: Vec<(Request<Full<Bytes>>, StatusCode, &str)> = vec![
        (
            request(
                Some("Kinesis_20131202.ListStreams"),
                "application/x-amz-json-1.1",
                b"{\"Limit\": ".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "SerializationException",
        ),
        (
            json(
                "Kinesis_20131202.DescribeStream",
                serde_json::json!({"StreamName": 42}),
            ),
            StatusCode::BAD_REQUEST,
            "SerializationException",
        ),
        (
            json(
                "Kinesis_20131202.PutRecord",
                serde_json::json!({"StreamName": "s", "PartitionKey": "k", "Data": "%%%"}),
            ),
            StatusCode::BAD_REQUEST,
            "SerializationException",
        ),
        (
            json(
                "Kinesis_20131202.PutRecord",
                serde_json::json!({"StreamName": "nope", "PartitionKey": "k", "Data": "eA=="}),
            ),
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
        ),
        (
            request(
                Some("Kinesis_20131202.ListStreams"),
                "application/x-amz-cbor-1.1",
                vec![0xff, 0x13, 0x00],
            ),
            StatusCode::BAD_REQUEST,
            "SerializationException",
        ),
        (
            request(None, "application/x-amz-json-1.1", b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
        ),
        (
            json("Kinesis_20131202.NoSuchThing", serde_json::json!({})),
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
        ),
        (
            request(
                Some("Kinesis_20131202.PutRecords"),
                "application/x-amz-json-1.1",
                vec![b' '; 100 * 1024],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
        ),
        (
            json(
                "Kinesis_20131202.GetRecords",
                serde_json::json!({"ShardIterator": "garbage"}),
            ),
            StatusCode::BAD_REQUEST,
            "InvalidArgumentException",
        ),
    ];
    for (req, status, error_type) in cases {
        let reply = send_http1(&emulator, req).await;
        assert_eq!(reply.status, status, "{error_type}: {:?}", reply.body);
        let body = reply.json();
        assert_eq!(body["__type"], error_type, "{body}");
        assert!(
            !body["message"].as_str().unwrap_or_default().is_empty(),
            "{body}"
        );
    }
    // Still serving after all that.
    active_stream(&emulator, "still-alive").await;
    let health = send_http1(
        &emulator,
        Request::get("/health")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn subscribe_to_shard_streams_event_frames_over_h2c() {
    use aws_smithy_eventstream::frame::read_message_from;
    use bytes::{Buf, BytesMut};

    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    active_stream(&emulator, "efo").await;
    let stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/efo";
    let registered = send_http1(
        &emulator,
        json(
            "Kinesis_20131202.RegisterStreamConsumer",
            serde_json::json!({"StreamARN": stream_arn, "ConsumerName": "h2"}),
        ),
    )
    .await
    .json();
    let consumer_arn = registered["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..200 {
        let described = send_http1(
            &emulator,
            json(
                "Kinesis_20131202.DescribeStreamConsumer",
                serde_json::json!({"ConsumerARN": consumer_arn}),
            ),
        )
        .await
        .json();
        if described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let stream = TcpStream::connect(emulator.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(json(
            "Kinesis_20131202.SubscribeToShard",
            serde_json::json!({
                "ConsumerARN": consumer_arn,
                "ShardId": "shardId-000000000000",
                "StartingPosition": {"Type": "LATEST"}
            }),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut body = response.into_body();

    send_http1(
        &emulator,
        json(
            "Kinesis_20131202.PutRecord",
            serde_json::json!({"StreamName": "efo", "PartitionKey": "k", "Data": "aGk="}),
        ),
    )
    .await;

    let mut buffer = BytesMut::new();
    let mut event_types = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    'frames: while tokio::time::Instant::now() < deadline {
        let frame = body.frame().await.expect("stream open").unwrap();
        buffer.extend_from_slice(frame.data_ref().unwrap());
        while buffer.len() >= 4 {
            let total = (&buffer[..4]).get_u32() as usize;
            if buffer.len() < total {
                break;
            }
            let message = read_message_from(buffer.split_to(total).freeze()).unwrap();
            let header = |name: &str| {
                message
                    .headers()
                    .iter()
                    .find(|h| h.name().as_str() == name)
                    .map(|h| h.value().as_string().unwrap().as_str().to_owned())
            };
            assert_eq!(header(":message-type").as_deref(), Some("event"));
            let event_type = header(":event-type").unwrap();
            event_types.push(event_type.clone());
            if event_type == "SubscribeToShardEvent" {
                let payload: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
                if payload["Records"].as_array().is_some_and(|r| !r.is_empty()) {
                    assert_eq!(payload["Records"][0]["Data"], "aGk=");
                    assert!(payload["ContinuationSequenceNumber"].is_string());
                    break 'frames;
                }
            }
        }
    }
    assert_eq!(
        event_types.first().map(String::as_str),
        Some("initial-response")
    );
    assert_eq!(
        event_types.last().map(String::as_str),
        Some("SubscribeToShardEvent")
    );
}

#[tokio::test]
async fn channel_calls_validate_members_and_speak_cbor_timestamps() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    let created = send_http1(
        &emulator,
        json(
            "Kinesis_20131202.CreateStream",
            serde_json::json!({"StreamName": "source", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    wait_until_active(&emulator, "source").await;
    let stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/source";
    let channel = |name: &str, s3: serde_json::Value| {
        serde_json::json!({
            "ChannelName": name,
            "ServiceExecutionRoleARN": "arn:aws:iam::123456789012:role/delivery",
            "StreamConfigurationList": [
                {"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}
            ],
            "S3DestinationConfiguration": s3,
        })
    };
    let storage = serde_json::json!({
        "BucketARN": "arn:aws:s3:::bucket",
        "ExpectedBucketOwner": "123456789012",
        "CompressionType": "NONE",
    });

    // A missing required member, at any depth, is named the way the service names it.
    let mut no_name = channel("x", serde_json::json!({"StorageConfiguration": storage}));
    no_name.as_object_mut().unwrap().remove("ChannelName");
    let missing_bucket = channel(
        "x",
        serde_json::json!({"StorageConfiguration": {"ExpectedBucketOwner": "123456789012", "CompressionType": "NONE"}}),
    );
    let bad_enum = channel(
        "x",
        serde_json::json!({"StorageConfiguration": {"BucketARN": "arn:aws:s3:::bucket", "ExpectedBucketOwner": "123456789012", "CompressionType": "LZ4"}}),
    );
    for (body, member) in [
        (no_name, "Value null at 'channelName'"),
        (
            missing_bucket,
            "Value null at 's3DestinationConfiguration.storageConfiguration.bucketARN'",
        ),
        (bad_enum, "enum value set: [NONE, GZIP, ZSTD]"),
    ] {
        let reply = send_http1(&emulator, json("Kinesis_20131202.CreateChannel", body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let error = reply.json();
        assert_eq!(error["__type"], "ValidationException", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(member),
            "{error}"
        );
    }
    let wrong_type = send_http1(
        &emulator,
        json(
            "Kinesis_20131202.CreateChannel",
            channel(
                "x",
                serde_json::json!({"StorageConfiguration": storage, "DataFreshnessInSeconds": "soon"}),
            ),
        ),
    )
    .await;
    assert_eq!(wrong_type.json()["__type"], "SerializationException");

    // Over CBOR, the channel's and its stream's creation times are tag-1 milliseconds, and a
    // StreamFilter's timestamp is read back the same way.
    let to_cbor = |value: serde_json::Value| -> Cbor {
        let mut bytes = Vec::new();
        ciborium::into_writer(&value, &mut bytes).unwrap();
        ciborium::from_reader(&bytes[..]).unwrap()
    };
    let reply = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.CreateChannel",
            to_cbor(channel(
                "cbor-channel",
                serde_json::json!({"StorageConfiguration": storage}),
            )),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply: Cbor = ciborium::from_reader(&reply.body[..]).unwrap();
    let description = cbor_get(&reply, "ChannelDescription");
    let Cbor::Tag(1, created_ms) = cbor_get(description, "ChannelCreationTimestamp") else {
        panic!("timestamps are tag 1: {description:?}");
    };
    assert!(i128::from(created_ms.as_integer().unwrap()) > 1_600_000_000_000);
    let source = &cbor_get(description, "StreamConfigurationList")
        .as_array()
        .unwrap()[0];
    let stream_created = cbor_get(source, "StreamCreationTimestamp").clone();
    assert!(matches!(stream_created, Cbor::Tag(1, _)), "{source:?}");
    let listed = send_http1(
        &emulator,
        cbor(
            "Kinesis_20131202.ListChannels",
            cbor_map(vec![(
                "StreamFilter",
                Cbor::Array(vec![cbor_map(vec![
                    ("StreamARN", Cbor::Text(stream_arn.to_owned())),
                    ("StreamCreationTimestamp", stream_created),
                ])]),
            )]),
        ),
    )
    .await;
    let listed: Cbor = ciborium::from_reader(&listed.body[..]).unwrap();
    let summaries = cbor_get(&listed, "ChannelSummaries").as_array().unwrap();
    assert_eq!(summaries.len(), 1, "{listed:?}");
    assert_eq!(
        cbor_get(&summaries[0], "ChannelName").as_text(),
        Some("cbor-channel")
    );
}

#[tokio::test]
async fn deeply_nested_bodies_are_refused_and_the_server_keeps_serving() {
    let emulator = EmbeddedEmulator::start(Config::embedded()).await.unwrap();
    active_stream(&emulator, "deep").await;
    let depth = 100_000;
    let deep_json = format!(
        "{{\"StreamName\": {}1{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // CBOR arrays of one element, nested: 0x81 0x81 ... 0x00.
    let mut deep_cbor = vec![0xa1, 0x6a];
    deep_cbor.extend_from_slice(b"StreamName");
    deep_cbor.extend(std::iter::repeat_n(0x81, depth));
    deep_cbor.push(0x00);
    let deep_item = format!(
        "{{\"TableName\": \"t-deep\", \"Item\": {{\"pk\": {}{{\"S\": \"x\"}}{}}}}}",
        "{\"M\": {\"a\": ".repeat(depth),
        "}}".repeat(depth)
    );
    let cases = [
        request(
            Some("Kinesis_20131202.DescribeStream"),
            "application/x-amz-json-1.1",
            deep_json.into_bytes(),
        ),
        request(
            Some("Kinesis_20131202.DescribeStream"),
            "application/x-amz-cbor-1.1",
            deep_cbor,
        ),
        request(
            Some("DynamoDB_20120810.PutItem"),
            "application/x-amz-json-1.0",
            deep_item.into_bytes(),
        ),
    ];
    for case in cases {
        let reply = send_http1(&emulator, case).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let kind = reply.json()["__type"].as_str().unwrap().to_owned();
        assert!(kind.ends_with("SerializationException"), "{kind}");
    }
    let listed = send_http1(
        &emulator,
        json("Kinesis_20131202.ListStreams", serde_json::json!({})),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
}
