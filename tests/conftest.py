"""Shared fixtures. `ddb` is moto's in-process DynamoDB (no network) with chute's table."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.store import Store
from infra import moto_ddb_fast
from infra.provision import Provisioned, provision
from infra.resources import LOCAL


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in [n for n in os.environ if n.startswith("CHUTE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    moto_ddb_fast.install()
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture
def provisioned(aws: boto3.Session) -> Provisioned:
    return provision(aws, None, LOCAL)


@pytest.fixture
def store(aws: boto3.Session, provisioned: Provisioned) -> Store:
    return Store(aws.client("dynamodb"), provisioned.table)
