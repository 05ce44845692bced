"""How the informer reads one watch event or page (`ferry.clients.informer._decode`): pydantic's
parser for valid text, the json module with the bad bytes replaced for the rest, exactly the
same objects either way."""

from __future__ import annotations

import json

import pytest

from ferry.clients.informer import _decode

pytestmark = pytest.mark.unit


def test_an_event_reads_as_the_json_module_reads_it() -> None:
    event = {
        "type": "ADDED",
        "object": {
            "metadata": {"name": "j", "resourceVersion": "12", "labels": {"ü": "€"}},
            "status": {"exitCode": -1, "runtime": 1.5, "big": 2**70, "none": None, "ok": True},
        },
    }
    line = json.dumps(event).encode()
    assert _decode(line) == json.loads(line) == event


def test_bytes_that_are_not_utf8_are_replaced_not_fatal() -> None:
    line = b'{"type":"ADDED","object":{"metadata":{"name":"j\xff"}}}'
    assert _decode(line)["object"]["metadata"]["name"] == "j\ufffd"


def test_text_that_is_not_json_is_an_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        _decode(b'{"type":"ADDED",')
