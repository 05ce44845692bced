"""Fixtures the integration tests share beyond tests/conftest.py: the test cluster's MinIO as
a client, a fresh bucket per test module, and the MPIJob CRD for the tests that need it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ferry.clients.s3 import S3Client
from tests.conftest import Kube
from tests.integration.mpi_support import install_mpijob_crd, remove_mpijob_crd


@pytest.fixture(scope="module")
def store(cluster: Any) -> S3Client:
    return S3Client(cluster.minio_endpoint, cluster.minio_access_key, cluster.minio_secret_key)


@pytest.fixture(scope="module")
def bucket(store: S3Client) -> str:
    name = f"it-{uuid.uuid4().hex[:10]}"
    store.make_bucket(name)
    return name


@pytest.fixture
def alone(_operator_process: Any) -> Any:
    """No shared operator while the test runs: the session's operator (admin, every namespace)
    would act on the test's Jobs before the operator under test does. The next test that asks
    for `operator` starts it again."""
    _operator_process.stop()
    return _operator_process


@pytest.fixture
def mpijob_crd(kube: Kube) -> Iterator[None]:
    """The real MPIJob CRD of the pinned MPI Operator while the test runs (no MPI controller);
    removed afterwards, with every MPIJob, so that other tests see MPIOperatorMissing."""
    install_mpijob_crd(kube)
    yield
    remove_mpijob_crd(kube)
