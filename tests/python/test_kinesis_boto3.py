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
