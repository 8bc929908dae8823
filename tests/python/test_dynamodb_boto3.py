"""boto3 against the emulator's DynamoDB API: the lease-table scenario through an independent client."""
import time

import pytest
from botocore.exceptions import ClientError


def wait_active(dynamodb, name):
    for _ in range(200):
        if dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.02)
    pytest.fail(f"table {name} never became ACTIVE")


def test_lease_table_scenario(dynamodb, name):
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "leaseKey", "AttributeType": "S"},
            {"AttributeName": "leaseOwner", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[{
            "IndexName": "LeaseOwnerToLeaseKeyIndex",
            "KeySchema": [
                {"AttributeName": "leaseOwner", "KeyType": "HASH"},
                {"AttributeName": "leaseKey", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
    )
    wait_active(dynamodb, name)
    for i in range(30):
        dynamodb.put_item(
            TableName=name,
            Item={"leaseKey": {"S": f"shardId-{i:012d}"}, "leaseCounter": {"N": "0"}, "checkpoint": {"S": "TRIM_HORIZON"}},
            ConditionExpression="attribute_not_exists(leaseKey)",
        )
    with pytest.raises(ClientError) as excinfo:
        dynamodb.put_item(
            TableName=name,
            Item={"leaseKey": {"S": "shardId-000000000000"}},
            ConditionExpression="attribute_not_exists(leaseKey)",
        )
    assert excinfo.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    key = {"leaseKey": {"S": "shardId-000000000000"}}
    dynamodb.update_item(
        TableName=name, Key=key,
        ConditionExpression="leaseCounter = :c",
        UpdateExpression="SET leaseOwner = :o, leaseCounter = :n",
        ExpressionAttributeValues={":c": {"N": "0"}, ":o": {"S": "worker-1"}, ":n": {"N": "1"}},
    )
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=name, Key=key,
            ConditionExpression="leaseCounter = :c",
            UpdateExpression="SET leaseOwner = :o",
            ExpressionAttributeValues={":c": {"N": "0"}, ":o": {"S": "worker-2"}},
        )
    item = dynamodb.get_item(TableName=name, Key=key, ConsistentRead=True)["Item"]
    assert item["leaseOwner"] == {"S": "worker-1"} and item["leaseCounter"] == {"N": "1"}

    owned = dynamodb.query(
        TableName=name, IndexName="LeaseOwnerToLeaseKeyIndex",
        KeyConditionExpression="leaseOwner = :o", ExpressionAttributeValues={":o": {"S": "worker-1"}},
    )
    assert [i["leaseKey"]["S"] for i in owned["Items"]] == ["shardId-000000000000"]

    seen, start = 0, None
    while True:
        kwargs = {"TableName": name, "Limit": 7, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = dynamodb.scan(**kwargs)
        seen += len(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == 30

    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": name, "Key": key, "ConditionExpression": "leaseOwner = :o",
                                "ExpressionAttributeValues": {":o": {"S": "nobody"}}}},
            {"Delete": {"TableName": name, "Key": {"leaseKey": {"S": "shardId-000000000001"}}}},
        ])
    assert "Item" in dynamodb.get_item(TableName=name, Key={"leaseKey": {"S": "shardId-000000000001"}})

    with pytest.raises(ClientError) as excinfo:
        dynamodb.update_item(TableName=name, Key=key, UpdateExpression="SET = :x", ExpressionAttributeValues={":x": {"N": "1"}})
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.get_item(TableName="no-such-table", Key=key)
