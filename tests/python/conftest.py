"""Shared fixtures: clients pointed at the emulator named by KCL_EMULATOR_ENDPOINT."""
import os
import uuid

import boto3
import pytest


@pytest.fixture(scope="session")
def endpoint():
    url = os.environ.get("KCL_EMULATOR_ENDPOINT")
    if not url:
        pytest.fail("KCL_EMULATOR_ENDPOINT is not set: run these tests through `cargo test`")
    return url


def _client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def kinesis(endpoint):
    return _client("kinesis", endpoint)


@pytest.fixture
def dynamodb(endpoint):
    return _client("dynamodb", endpoint)


@pytest.fixture
def name():
    return "py-" + uuid.uuid4().hex[:12]
