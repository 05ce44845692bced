"""Fixtures the integration tests share beyond tests/conftest.py: the test cluster's MinIO as
a client, and a fresh bucket per test module."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ferry.clients.s3 import S3Client


@pytest.fixture(scope="module")
def store(cluster: Any) -> S3Client:
    return S3Client(cluster.minio_endpoint, cluster.minio_access_key, cluster.minio_secret_key)


@pytest.fixture(scope="module")
def bucket(store: S3Client) -> str:
    name = f"it-{uuid.uuid4().hex[:10]}"
    store.make_bucket(name)
    return name
