"""The Job cache: newest version wins, Ferry's own write is no news, terminal Jobs at rest."""

from __future__ import annotations

import gc
import json
import tracemalloc
import zlib
from typing import Any

import pytest

from ferry.api.job import State
from ferry.handlers.jobcache import LAST_APPLIED, JobCache, Packer, slim

pytestmark = pytest.mark.unit

KEY = ("ns", "j")


def _job(rv: int, state: str | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "resourceVersion": str(rv), **meta},
        "spec": {"appRef": {"name": "solver"}, "parameters": [{"name": "n", "value": "1"}]},
        "status": {"state": state, "outputs": {"uri": "s3://b/ns/j/attempt-1/"}} if state else {},
    }


def test_only_newer_versions_are_news() -> None:
    cache = JobCache()
    assert cache.put(KEY, _job(5))
    assert not cache.put(KEY, _job(5)), "the same version (e.g. Ferry's own write) is no news"
    assert not cache.put(KEY, _job(4)), "an older version never replaces a newer one"
    assert cache.rv(KEY) == 5
    assert cache.put(KEY, _job(6, "Running"))
    assert cache.state(KEY) == "Running"


def test_a_terminal_job_at_rest_keeps_what_children_and_metrics_need() -> None:
    cache = JobCache()
    cache.put(KEY, _job(7, "Finished"))
    assert cache.rest(KEY)
    assert cache.get(KEY) is None
    assert cache.is_rested(KEY)
    assert KEY in cache
    assert cache.rv(KEY) == 7
    assert cache.state(KEY) == "Finished"
    assert cache.terminal(KEY)
    parent = cache.parent(KEY)
    assert parent is not None
    assert parent.state == State.FINISHED
    assert parent.outputs_uri == "s3://b/ns/j/attempt-1/"
    assert cache.states() == {"Finished": 1}
    assert cache.versions() == {KEY: 7}
    assert list(cache.active()) == []


def test_a_job_at_rest_comes_back_whole_on_a_newer_version_or_a_fresh_read() -> None:
    cache = JobCache()
    cache.put(KEY, _job(7, "Finished"))
    cache.rest(KEY)
    assert not cache.put(KEY, _job(7, "Finished")), "a relisted same version stays at rest"
    assert cache.is_rested(KEY)
    assert not cache.put(KEY, _job(7, "Finished"), refresh=True)  # read to work on it
    assert cache.get(KEY) is not None
    assert not cache.is_rested(KEY)
    cache.rest(KEY)
    assert cache.put(KEY, _job(8, "Finished", deletionTimestamp="2026-01-01T00:00:00Z"))
    assert cache.get(KEY) is not None


def test_only_terminal_whole_jobs_can_rest() -> None:
    cache = JobCache()
    assert not cache.rest(KEY)
    cache.put(KEY, _job(3, "Running"))
    assert not cache.rest(KEY)
    assert cache.get(KEY) is not None
    assert [k for k, _ in cache.active()] == [KEY]


def test_drop_forgets_both_forms() -> None:
    cache = JobCache()
    cache.put(KEY, _job(1, "Failed"))
    cache.rest(KEY)
    cache.drop(KEY)
    assert KEY not in cache
    assert cache.state(KEY) is None
    assert len(cache) == 0


def _finished(i: int) -> dict[str, Any]:
    job = _job(i + 1, "Finished", uid=f"uid-{i}")
    job["metadata"]["name"] = f"j{i:05d}"
    job["status"]["conditions"] = [
        {"type": t, "status": "True", "reason": "Succeeded", "message": f"m{i}" * 10}
        for t in ("Accepted", "InputsStaged", "Archived", "Succeeded", "Ready")
    ]
    job["status"]["history"] = [
        {"state": s, "time": f"2026-11-21T00:00:{i % 60:02d}Z", "reason": s}
        for s in ("Queued", "Running", "Finished")
    ]
    out: dict[str, Any] = json.loads(json.dumps(job))  # fresh objects, as the watch delivers
    return out


def _traced(fill: Any) -> int:
    """Bytes still allocated after `fill()` (traced)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fill()
        gc.collect()
        return int(tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()


def test_jobs_at_rest_take_a_fraction_of_the_memory_of_whole_jobs() -> None:
    cache = JobCache()
    keys = [("ns", f"j{i:05d}") for i in range(2000)]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i, key in enumerate(keys):
            cache.put(key, _finished(i))
        gc.collect()
        whole = tracemalloc.get_traced_memory()[0] - base
        for key in keys:
            assert cache.rest(key)
        gc.collect()
        rested = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert rested * 4 < whole, f"at rest {rested} bytes vs whole {whole} bytes"
    assert cache.states() == {"Finished": 2000}


def test_a_listed_terminal_job_is_kept_packed_until_its_pass() -> None:
    cache = JobCache()
    listed = _finished(0)
    key = ("ns", "j00000")
    assert cache.put(key, listed, listed=True)
    # A pass is owed (not at rest), and everything but the whole Job is at hand without it.
    assert not cache.is_rested(key)
    assert key in cache
    assert cache.rv(key) == 1
    assert cache.state(key) == "Finished"
    assert cache.terminal(key)
    parent = cache.parent(key)
    assert parent is not None
    assert parent.state == State.FINISHED
    assert cache.states() == {"Finished": 1}
    assert cache.versions() == {key: 1}
    assert list(cache.active()) == []
    # The pass asks for it: whole again, as listed (slimmed).
    whole = cache.get(key)
    assert whole == slim(listed)
    assert cache.get(key) is whole
    assert cache.rest(key)
    assert cache.is_rested(key)
    assert cache.get(key) is None, "once passed, at rest for good"


def test_a_packed_job_is_replaced_by_a_newer_version_and_deleted_for_good() -> None:
    cache = JobCache()
    key = ("ns", "j00000")
    cache.put(key, _finished(0), listed=True)
    assert not cache.put(key, _finished(0), listed=True), "the same version is no news"
    newer = _finished(0)
    newer["metadata"]["resourceVersion"] = "9"
    newer["spec"]["cancel"] = True
    assert cache.put(key, newer)
    assert cache.get(key) == newer
    cache.put(
        key, {**newer, "metadata": {**newer["metadata"], "resourceVersion": "10"}}, listed=True
    )
    assert cache.delete(key) is None, "packed: not kept whole"
    assert "uid-0" in cache.deleted
    assert not cache.put(key, _finished(0), listed=True), "a deleted Job never comes back"


def test_only_terminal_jobs_from_a_listing_are_packed() -> None:
    cache = JobCache()
    running = _job(3, "Running")
    cache.put(KEY, running, listed=True)
    assert cache.get(KEY) is not None
    assert [k for k, _ in cache.active()] == [KEY]
    watched = JobCache()
    watched.put(KEY, _job(3, "Finished"))  # a watch event: passed soon, kept whole
    assert watched.get(KEY) is not None
    assert watched.rest(KEY)


def test_a_held_status_is_never_packed() -> None:
    cache = JobCache()
    cache.put(KEY, _job(3, "Running"))
    written = cache.get(KEY)
    assert written is not None
    assert cache.hold(KEY, {"state": "Finished"}, written["status"], since=0.0)
    # A relisting of the version written: the held status stays, whole.
    cache.put(KEY, _job(3, "Running"), listed=True, refresh=True)
    kept = cache.get(KEY)
    assert kept is not None
    assert kept["status"] == {"state": "Finished"}


def test_listed_finished_jobs_packed_take_a_fraction_of_the_memory_of_whole_ones() -> None:
    keys = [("ns", f"j{i:05d}") for i in range(2000)]
    whole_cache, packed_cache = JobCache(), JobCache()
    whole = _traced(lambda: [whole_cache.put(k, _finished(i)) for i, k in enumerate(keys)])
    packed = _traced(
        lambda: [packed_cache.put(k, _finished(i), listed=True) for i, k in enumerate(keys)]
    )
    assert packed * 3 < whole, f"packed {packed} bytes vs whole {whole} bytes"
    assert packed_cache.states() == whole_cache.states() == {"Finished": 2000}


def test_jobs_are_packed_against_the_first_one_as_a_dictionary() -> None:
    packer = Packer()
    jobs = [slim(_finished(i)) for i in range(200)]
    packed = [packer.pack(job) for job in jobs]
    assert all(p is not None for p in packed)
    assert [packer.unpack(p) for p in packed if p is not None] == jobs, "round trip, exactly"
    # Each packed alone (its own compressor, no dictionary) against packed with the first.
    alone = sum(len(zlib.compress(json.dumps(j, separators=(",", ":")).encode(), 1)) for j in jobs)
    shared = sum(len(p) for p in packed if p is not None)
    assert shared * 3 < alone, f"{shared} bytes packed against {alone} packed alone"


def test_a_listed_job_that_is_not_utf8_text_is_kept_whole() -> None:
    cache = JobCache()
    cache.put(("ns", "j00000"), _finished(0), listed=True)  # the dictionary
    odd = _finished(1)
    odd["status"]["message"] = "half a pair \ud800"
    key = ("ns", "j00001")
    assert cache.put(key, odd, listed=True)
    assert not cache.is_packed(key)
    assert cache.get(key) == slim(odd)
    assert cache.states() == {"Finished": 2}


def test_slim_drops_managed_fields_and_the_last_applied_copy_only() -> None:
    obj = _job(1)
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    obj["metadata"]["annotations"] = {LAST_APPLIED: "{...}", "keep": "me"}
    out = slim(obj)
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["annotations"] == {"keep": "me"}
    assert out["spec"] == obj["spec"]
    assert obj["metadata"]["managedFields"], "the original is not changed"
