"""The kopf settings Ferry relies on for scale (set explicitly, not kopf's defaults)."""

from __future__ import annotations

import kopf
import pytest

from ferry.config import OperatorConfig
from ferry.handlers.operator import configure

pytestmark = pytest.mark.unit


def test_listing_is_paged_and_idle_workers_leave_soon() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig(list_chunk_size=250))
    assert settings.watching.chunk_size == 250
    assert settings.queueing.idle_timeout < 1.0
    assert settings.queueing.worker_limit == 1000
    assert settings.posting.enabled is False


def test_no_diff_base_is_copied_for_event_only_handlers() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig())
    body = kopf.Body({"metadata": {"name": "j"}, "spec": {"big": ["x"] * 1000}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
