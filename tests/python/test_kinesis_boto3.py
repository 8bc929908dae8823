"""boto3 against the emulator's Kinesis API: an independent client keeps the wire format honest."""
import datetime
import time

import botocore.exceptions
import pytest


def wait_active(kinesis, name):
    waiter = kinesis.get_waiter("stream_exists")
    waiter.wait(StreamName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_stream_lifecycle_and_records(kinesis, name):
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    assert isinstance(summary["StreamCreationTimestamp"], datetime.datetime)

    put = kinesis.put_records(
        StreamName=name,
        Records=[{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(20)],
    )
    assert put["FailedRecordCount"] == 0
    single = kinesis.put_record(StreamName=name, Data=b"\x00\xffbinary", PartitionKey="bin")

    seen = {}
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        out = kinesis.get_records(ShardIterator=it, Limit=100)
        assert out["MillisBehindLatest"] >= 0
        for record in out["Records"]:
            assert isinstance(record["ApproximateArrivalTimestamp"], datetime.datetime)
            seen[record["SequenceNumber"]] = record["Data"]
    assert len(seen) == 21
    assert seen[single["SequenceNumber"]] == b"\x00\xffbinary"

    kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200}
    )


def test_errors_are_shaped_like_aws(kinesis, name):
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as excinfo:
        kinesis.describe_stream(StreamName=name)
    assert name in excinfo.value.response["Error"]["Message"]

    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=name, ShardCount=1)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x" * (1024 * 1024 + 1), PartitionKey="k")
    assert error_code(excinfo) == "ValidationException"
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.get_records(ShardIterator="AAAAAAAAAAAAAAAA")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=9000)


def test_resharding_and_consumers(kinesis, name):
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    kinesis.split_shard(
        StreamName=name,
        ShardToSplit="shardId-000000000000",
        NewStartingHashKey=str(2**126),
    )
    wait_active(kinesis, name)
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    assert [s.get("ParentShardId") for s in shards[2:]] == ["shardId-000000000000"] * 2

    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="py-app")["Consumer"]
    assert consumer["ConsumerStatus"] in ("CREATING", "ACTIVE")
    listed = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
    assert [c["ConsumerName"] for c in listed] == ["py-app"]
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])


def test_subscribe_to_shard_receives_records_put_after_subscribing(kinesis, name):
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="efo")["Consumer"]
    for _ in range(200):
        described = kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
        if described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE":
            break
        time.sleep(0.02)
    response = kinesis.subscribe_to_shard(
        ConsumerARN=consumer["ConsumerARN"],
        ShardId="shardId-000000000000",
        StartingPosition={"Type": "LATEST"},
    )
    sent = [
        kinesis.put_record(StreamName=name, Data=f"efo-{i}".encode(), PartitionKey="k")["SequenceNumber"]
        for i in range(10)
    ]
    received = []
    for event in response["EventStream"]:
        shard_event = event["SubscribeToShardEvent"]
        assert shard_event["ContinuationSequenceNumber"]
        received.extend(r["SequenceNumber"] for r in shard_event["Records"])
        if len(received) >= len(sent):
            break
    assert received == sent


def test_channel_lifecycle(kinesis, name):
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    created = kinesis.create_channel(
        ChannelName=name + "-channel",
        ServiceExecutionRoleARN="arn:aws:iam::123456789012:role/delivery",
        StreamConfigurationList=[
            {"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "STRING"}}
        ],
        S3DestinationConfiguration={
            "StorageConfiguration": {
                "BucketARN": "arn:aws:s3:::delivery",
                "ExpectedBucketOwner": "123456789012",
                "CompressionType": "ZSTD",
            },
            "DataFreshnessInSeconds": 120,
        },
        Tags={"owner": "python"},
    )["ChannelDescription"]
    arn = created["ChannelARN"]
    assert created["ChannelStatus"] == "CREATING"
    assert isinstance(created["ChannelCreationTimestamp"], datetime.datetime)
    assert created["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 120

    deadline = time.monotonic() + 30
    while kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "channel never became ACTIVE"
        time.sleep(0.05)

    listed = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn}])["ChannelSummaries"]
    assert [c["ChannelARN"] for c in listed] == [arn]
    assert listed[0]["ChannelDestinationType"] == "S3"
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "owner", "Value": "python"}
    ]

    updated = kinesis.update_channel(
        ChannelARN=arn, S3DestinationConfiguration={"DataFreshnessInSeconds": 900}
    )["ChannelDescription"]
    assert updated["ChannelStatus"] == "UPDATING"
    assert updated["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 900

    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_channel(ChannelARN=arn[:-3] + "zzz")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.update_channel(ChannelARN=arn)

    kinesis.delete_channel(ChannelARN=arn)
    assert kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"] == "DELETING"


def test_every_operation_of_the_service_model_is_implemented(endpoint):
    """Each operation botocore knows, sent with no parameters, is answered by the operation
    itself (an AWS-shaped complaint about the missing members), never as unknown."""
    import boto3
    from botocore.config import Config

    kinesis = boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    unknown = []
    for operation in kinesis.meta.service_model.operation_names:
        try:
            kinesis._make_api_call(operation, {})
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] == "UnknownOperationException":
                unknown.append(operation)
        except botocore.exceptions.BotoCoreError:
            # Client-side failures (e.g. an endpoint rule needing a missing ARN) never reached
            # the emulator; they say nothing about it.
            pass
    assert unknown == [], f"operations the emulator does not implement: {unknown}"



def wait_queue_active(kinesis, arn):
    deadline = time.monotonic() + 30
    while kinesis.describe_queue(QueueARN=arn)["QueueDescription"]["QueueStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "queue never became ACTIVE"
        time.sleep(0.05)


def on_demand_stream(kinesis, name):
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def test_queue_delivers_acknowledges_and_redelivers(kinesis, name):
    stream_arn = on_demand_stream(kinesis, name)
    for i in range(5):
        kinesis.put_record(StreamName=name, Data=f"early-{i}".encode(), PartitionKey=f"k{i}")
    created = kinesis.create_queue(
        QueueName=name + "-q",
        StreamConfigurationList=[
            {"StreamARN": stream_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}
        ],
        QueueAttributes={"VisibilityTimeoutSeconds": 30},
        Tags={"team": "queues"},
    )["QueueDescription"]
    arn = created["QueueARN"]
    assert created["QueueStatus"] == "CREATING"
    assert arn.startswith("arn:aws:kinesis:us-east-1:000000000000:queue/")
    assert created["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 30,
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 6},
    }
    wait_queue_active(kinesis, arn)
    described = kinesis.describe_queue(QueueARN=arn)["QueueDescription"]
    position = described["StreamConfigurationList"][0]["StartingPosition"]
    assert position["Type"] == "TRIM_HORIZON"
    assert isinstance(position["Timestamp"], datetime.datetime)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["QueueCount"] == 1

    # TRIM_HORIZON: the records written before the queue existed are delivered, each once.
    first = kinesis.receive_queue_records(QueueARN=arn, Limit=3, WaitTimeSeconds=1)["QueueRecords"]
    rest = kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=1)["QueueRecords"]
    records = first + rest
    assert len(first) == 3
    assert sorted(r["Data"] for r in records) == [f"early-{i}".encode() for i in range(5)]
    assert all(r["ReceiveCount"] == 1 for r in records)
    assert all(isinstance(r["FirstReceiveTimestamp"], datetime.datetime) for r in records)
    assert len({r["RecordId"] for r in records}) == 5
    assert kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=1)["QueueRecords"] == []

    # Acknowledge two, keep one in flight, and hand the others back at once.
    acked = kinesis.acknowledge_queue_records(
        QueueARN=arn, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in records[:2]]
    )
    assert len(acked["Successful"]) == 2 and acked["Failed"] == []
    released = kinesis.update_queue_records_visibility(
        QueueARN=arn,
        Entries=[
            {"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}
            for r in records[3:]
        ],
    )
    assert released["Failed"] == []
    again = kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=2)["QueueRecords"]
    assert sorted(r["RecordId"] for r in again) == sorted(r["RecordId"] for r in records[3:])
    assert all(r["ReceiveCount"] == 2 for r in again)

    # A stale handle, an acknowledged one, and one that is not a handle at all.
    outcome = kinesis.acknowledge_queue_records(
        QueueARN=arn,
        Entries=[
            {"ReceiptHandle": records[3]["ReceiptHandle"]},
            {"ReceiptHandle": records[0]["ReceiptHandle"]},
            {"ReceiptHandle": "garbage"},
            {"ReceiptHandle": again[0]["ReceiptHandle"]},
        ],
    )
    codes = sorted(f["ErrorCode"] for f in outcome["Failed"])
    assert codes == [
        "InvalidArgumentException",
        "InvalidArgumentException",
        "ResourceNotFoundException",
    ]
    assert [s["ReceiptHandle"] for s in outcome["Successful"]] == [again[0]["ReceiptHandle"]]

    # Queues are tagged, listed and updated like other Kinesis resources.
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "team", "Value": "queues"}
    ]
    policy = '{"Version": "2012-10-17", "Statement": []}'
    kinesis.put_resource_policy(ResourceARN=arn, Policy=policy)
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == policy
    assert kinesis.get_resource_policy(ResourceARN=stream_arn)["Policy"] == "{}"
    listed = kinesis.list_queues(StreamFilter=[{"StreamARN": stream_arn}])["QueueSummaries"]
    assert [q["QueueARN"] for q in listed] == [arn]
    updated = kinesis.update_queue(
        QueueARN=arn, QueueAttributes={"DeadLetterConfiguration": {"TargetType": "NONE"}}
    )["QueueDescription"]
    assert updated["QueueStatus"] == "UPDATING"
    assert updated["QueueAttributes"]["DeadLetterConfiguration"] == {"TargetType": "NONE"}
    assert updated["QueueAttributes"]["VisibilityTimeoutSeconds"] == 30

    # The stream cannot go while the queue reads it.
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    wait_queue_active(kinesis, arn)
    kinesis.delete_queue(QueueARN=arn)
    with pytest.raises(botocore.exceptions.ClientError):
        kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=1)


def test_dead_letter_records_are_set_aside_and_restored(kinesis, name):
    stream_arn = on_demand_stream(kinesis, name)
    arn = kinesis.create_queue(
        QueueName=name + "-dlq",
        StreamConfigurationList=[{"StreamARN": stream_arn}],
        QueueAttributes={
            "VisibilityTimeoutSeconds": 0,
            "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2},
        },
    )["QueueDescription"]["QueueARN"]
    wait_queue_active(kinesis, arn)
    # LATEST: only what is written after the queue exists.
    kinesis.put_record(StreamName=name, Data=b"poison", PartitionKey="p")
    for attempt in (1, 2):
        got = kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=2)["QueueRecords"]
        assert [(r["Data"], r["ReceiveCount"]) for r in got] == [(b"poison", attempt)]
    # Received MaxReceiveCount times and not acknowledged: a dead-letter record now.
    assert kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=1)["QueueRecords"] == []
    dead = kinesis.receive_dead_letter_queue_records(
        QueueARN=arn, WaitTimeSeconds=1, VisibilityTimeoutSeconds=30
    )["QueueRecords"]
    assert [r["Data"] for r in dead] == [b"poison"]
    assert kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=1)[
        "QueueRecords"
    ] == []
    shown = kinesis.update_dead_letter_queue_records_visibility(
        QueueARN=arn,
        Entries=[{"ReceiptHandle": dead[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}],
    )
    assert shown["Failed"] == []
    dead = kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=1)[
        "QueueRecords"
    ]
    restored = kinesis.restore_dead_letter_queue_records(
        QueueARN=arn, Entries=[{"ReceiptHandle": dead[0]["ReceiptHandle"]}]
    )
    assert restored["Failed"] == []
    back = kinesis.receive_queue_records(QueueARN=arn, WaitTimeSeconds=2)["QueueRecords"]
    assert [(r["Data"], r["ReceiveCount"]) for r in back] == [(b"poison", 1)]
    done = kinesis.acknowledge_queue_records(
        QueueARN=arn, Entries=[{"ReceiptHandle": back[0]["ReceiptHandle"]}]
    )
    assert done["Failed"] == []
    assert kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=1)[
        "QueueRecords"
    ] == []


def test_queue_requests_are_validated(kinesis, name):
    provisioned = name + "-prov"
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    wait_active(kinesis, provisioned)
    arn = kinesis.describe_stream_summary(StreamName=provisioned)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        kinesis.create_queue(QueueName=name, StreamConfigurationList=[{"StreamARN": arn}])
    assert error_code(excinfo) == "ValidationException"
    stream_arn = on_demand_stream(kinesis, name)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        kinesis.create_queue(
            QueueName=name,
            StreamConfigurationList=[
                {"StreamARN": stream_arn, "StartingPosition": {"Type": "LATEST", "Timestamp": 1}}
            ],
        )
    assert error_code(excinfo) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        kinesis.create_queue(
            QueueName=name,
            StreamConfigurationList=[{"StreamARN": stream_arn}],
            QueueAttributes={"DeadLetterConfiguration": {"TargetType": "BUILT_IN"}},
        )
    assert error_code(excinfo) == "ValidationException"
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_queue(QueueARN="arn:aws:kinesis:us-east-1:000000000000:queue/nosuchqueue")
