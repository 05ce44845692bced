"""The Job and pod informer (`ferry.clients.informer`) on the real apiserver: a listing
streamed from the watch cache (one watch request, no pages), then the changes on the same
request; and, on an apiserver that refuses streamed listings (the WatchList feature off), the
same listing read in pages. Either way every Job comes once, without a kind, before the
`Relisted` marker that names them all."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ferry.clients.informer import Informer
from ferry.clients.kube import KubeClient, load_config
from ferry.clients.protocol import Relisted, WatchEvent
from ferrydev.cluster.expiry import SpareApiserver
from tests.conftest import Kube
from tests.integration.lifecycle_support import app_manifest, job_manifest

pytestmark = pytest.mark.integration

JOBS = 12


class Feed:
    """What an informer delivered, in order."""

    def __init__(self) -> None:
        self.items: list[WatchEvent | Relisted] = []
        #: How many items each hand-off brought.
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[WatchEvent | Relisted]) -> None:
        with self.lock:
            self.items.extend(items)
            self.sizes.append(len(items))

    def snapshot(self) -> list[WatchEvent | Relisted]:
        with self.lock:
            return list(self.items)


def _make_jobs(kube: Kube, namespace: str) -> set[tuple[str, str]]:
    kube.apply(app_manifest(), "-n", namespace)
    names = {(namespace, f"listed-{i}") for i in range(JOBS)}
    # Jobs of a real size (a finished one is about 5 kB): the apiserver sends each in a read
    # of its own, as it does a listing of many (smaller ones share reads).
    note = {"example.org/note": "x" * 5000}
    for _, name in sorted(names):
        kube.create(job_manifest(name, annotations=note), "-n", namespace)
    return names


def _run(kubeconfig: Path, namespace: str, *, stream: bool) -> tuple[Informer, Feed]:
    client = KubeClient(load_config(str(kubeconfig)), qps=100, burst=200)
    feed = Feed()
    informer = Informer(
        client, "jobs", namespace, feed, chunk_size=5, timeout_seconds=60, stream_lists=stream
    )
    informer.start()
    return informer, feed


def _listing(kube: Kube, feed: Feed) -> tuple[list[WatchEvent], Relisted]:
    def marker() -> Relisted | None:
        return next((i for i in feed.snapshot() if isinstance(i, Relisted)), None)

    done = kube.wait_for(marker, timeout=60, interval=0.05, what="the listing's end")
    items = feed.snapshot()
    before = [i for i in items[: items.index(done)] if isinstance(i, WatchEvent)]
    return before, done


def _names(events: Sequence[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.obj["metadata"]["namespace"], e.obj["metadata"]["name"]) for e in events]


def _check_listing_then_watch(
    kube: Kube, namespace: str, feed: Feed, names: set[tuple[str, str]]
) -> None:
    listed, done = _listing(kube, feed)
    assert sorted(_names(listed)) == sorted(names), "every Job once, before the marker"
    assert all(e.kind is None for e in listed), "listed objects carry no kind"
    assert done.names == frozenset(names)
    assert done.cause == "start"
    assert done.resource_version >= max(int(e.obj["metadata"]["resourceVersion"]) for e in listed)
    # The watch goes on after the listing: a new Job comes as ADDED.
    kube.create(job_manifest("later"), "-n", namespace)

    def added() -> bool:
        return any(
            isinstance(i, WatchEvent) and i.kind == "ADDED" and i.obj["metadata"]["name"] == "later"
            for i in feed.snapshot()
        )

    kube.wait_for(added, timeout=30, interval=0.05, what="the new Job's ADDED event")


def test_a_listing_is_streamed_from_the_watch_cache(kube: Kube, namespace: str) -> None:
    names = _make_jobs(kube, namespace)
    informer, feed = _run(kube.state.kubeconfig, namespace, stream=True)
    try:
        _check_listing_then_watch(kube, namespace, feed, names)
        calls = dict(informer.kube.calls.counts)
        # One watch request did it all: no page was read (12 Jobs in pages of 5 would be 3).
        assert calls == {"watch jobs": 1}, calls
        assert informer.stream_lists
        # The apiserver sends the listing one object per read; it is handed on as pages of
        # chunk_size would be (a hand-off per object cost the event loop a wake-up each).
        with feed.lock:
            sizes = list(feed.sizes)
        handoffs = next(i for i, _ in enumerate(sizes) if sum(sizes[: i + 1]) >= JOBS + 1) + 1
        assert handoffs <= 4, f"{JOBS} Jobs and the marker in hand-offs of {sizes}"
    finally:
        informer.stop()


def test_the_same_listing_in_pages_when_streaming_is_off(kube: Kube, namespace: str) -> None:
    names = _make_jobs(kube, namespace)
    informer, feed = _run(kube.state.kubeconfig, namespace, stream=False)
    try:
        _check_listing_then_watch(kube, namespace, feed, names)
        calls = dict(informer.kube.calls.counts)
        assert calls == {"list jobs": 3, "watch jobs": 1}, calls
    finally:
        informer.stop()


@pytest.fixture
def no_watch_list(kube: Kube, tmp_path: Path) -> Iterator[SpareApiserver]:
    """An apiserver on the cluster's etcd that does not stream listings."""
    server = SpareApiserver(kube.state, tmp_path, extra_args=("--feature-gates=WatchList=false",))
    server.start()
    yield server
    server.stop()


def test_an_apiserver_that_refuses_streaming_is_listed_in_pages(
    kube: Kube, namespace: str, no_watch_list: SpareApiserver
) -> None:
    names = _make_jobs(kube, namespace)
    informer, feed = _run(no_watch_list.kubeconfig, namespace, stream=True)
    try:
        _check_listing_then_watch(kube, namespace, feed, names)
        assert not informer.stream_lists, "the refusal is remembered: pages from now on"
        calls = dict(informer.kube.calls.counts)
        # The refused streamed listing, then 3 pages and the watch.
        assert calls == {"watch jobs": 2, "list jobs": 3}, calls
    finally:
        informer.stop()
