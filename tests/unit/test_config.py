"""Operator settings from FERRY_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ferry.config import OperatorConfig

pytestmark = pytest.mark.unit


def test_defaults_without_environment() -> None:
    config = OperatorConfig.from_env({"PATH": "/usr/bin", "HOME": "/root"})
    assert config == OperatorConfig()
    assert config.archive_tries == 3
    assert config.namespaces == ()
    assert config.storage_class_name is None


def test_values_are_parsed() -> None:
    config = OperatorConfig.from_env(
        {
            "FERRY_DEFAULT_S3_BUCKET": "results",
            "FERRY_DEFAULT_S3_ENDPOINT": "https://s3.example.org",
            "FERRY_NAMESPACES": "team-a, team-b,,",
            "FERRY_QPS": "12.5",
            "FERRY_BURST": "40",
            "FERRY_WORKERS": "4",
            "FERRY_ARCHIVE_TRIES": "5",
            "FERRY_RESYNC_SECONDS": "15",
            "FERRY_POD_START_GRACE_SECONDS": "120",
            "FERRY_STORAGE_CLASS_NAME": "fast",
            "FERRY_METRICS_PORT": "9090",
            "OTHER": "ignored",
        }
    )
    assert config.default_s3_bucket == "results"
    assert config.default_s3_endpoint == "https://s3.example.org"
    assert config.namespaces == ("team-a", "team-b")
    assert config.qps == 12.5
    assert (config.burst, config.workers, config.archive_tries) == (40, 4, 5)
    assert config.resync_seconds == 15.0
    assert config.pod_start_grace_seconds == 120.0
    assert config.storage_class_name == "fast"
    assert config.metrics_port == 9090


def test_empty_optional_value_is_none() -> None:
    assert OperatorConfig.from_env({"FERRY_STORAGE_CLASS_NAME": ""}).storage_class_name is None


@pytest.mark.parametrize("name", ["FERRY_BUCKET", "FERRY_ARCHIVE_TRY", "FERRY_DEFAULT_S3"])
def test_unknown_ferry_variable_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        OperatorConfig.from_env({name: "x"})


@pytest.mark.parametrize(
    "name", ["FERRY_KUBECONFIG", "FERRY_LOG_LEVEL", "FERRY_E2E", "FERRY_CACHE"]
)
def test_tooling_variables_are_not_settings_but_allowed(name: str) -> None:
    assert OperatorConfig.from_env({name: "x"}) == OperatorConfig()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FERRY_QPS", "0"),
        ("FERRY_QPS", "fast"),
        ("FERRY_WORKERS", "0"),
        ("FERRY_WORKERS", "65"),
        ("FERRY_ARCHIVE_TRIES", "0"),
        ("FERRY_WATCH_TIMEOUT_SECONDS", "5"),
        ("FERRY_METRICS_PORT", "70000"),
        ("FERRY_POD_START_GRACE_SECONDS", "0"),
        ("FERRY_ALLOWED_STORE_ENDPOINTS", "http://ok.svc:9000,ftp://store"),
        ("FERRY_ALLOWED_STORE_ENDPOINTS", "http://user:pw@store.svc"),
        ("FERRY_ALLOWED_STORE_ENDPOINTS", "http://store.svc/path"),
        ("FERRY_DEFAULT_S3_ENDPOINT", "http://store.svc:port"),
    ],
)
def test_bad_values_are_rejected_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        OperatorConfig.from_env({name: value})
    field = name.removeprefix("FERRY_").lower()
    assert field in [e["loc"][0] for e in info.value.errors()]


def test_config_is_frozen_and_strict() -> None:
    config = OperatorConfig()
    with pytest.raises(ValidationError):
        config.archive_tries = 9  # type: ignore[misc]
    with pytest.raises(ValidationError):
        OperatorConfig(colour="blue")  # type: ignore[call-arg]


def test_allowed_store_endpoints_are_trusted_with_the_default_store() -> None:
    config = OperatorConfig.from_env(
        {
            "FERRY_DEFAULT_S3_ENDPOINT": "http://minio.ferry-system.svc:9000",
            "FERRY_ALLOWED_STORE_ENDPOINTS": " http://minio.data.svc:9000, https://s3.example.org",
        }
    )
    assert config.allowed_store_endpoints == (
        "http://minio.data.svc:9000",
        "https://s3.example.org",
    )
    assert config.trusted_store_endpoints == (
        "http://minio.ferry-system.svc:9000",
        "http://minio.data.svc:9000",
        "https://s3.example.org",
    )
    # compared as (scheme, host, port): case, a trailing slash and default ports do not matter
    assert config.is_trusted_store("HTTP://MinIO.ferry-system.svc:9000/")
    assert config.is_trusted_store("https://s3.example.org:443")
    assert not config.is_trusted_store("http://s3.example.org")
    assert not config.is_trusted_store("http://minio.data.svc:9001")
    assert not config.is_trusted_store("http://169.254.169.254")
    assert OperatorConfig().allowed_store_endpoints == ()
