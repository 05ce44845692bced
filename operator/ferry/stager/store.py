"""The object store as the stager sees it: a client from FERRY_S3_* and the retry policy.

Owns: building the S3 client from the container's environment (endpoint, region and the
credentials the pod got by secretKeyRef) and retrying transient failures with exponential
backoff. Only StoreUnavailableError (unreachable, timeouts, 5xx) is retried; not-found and refused
credentials fail at once. Must not: log or return credentials.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from ferry.clients.s3 import S3Client, StoreError, StoreUnavailableError
from ferry.stager.errors import StagerError

T = TypeVar("T")

BACKOFF_CAP_SECONDS = 30.0


def client_from_env() -> S3Client:
    endpoint = os.environ.get("FERRY_S3_ENDPOINT", "").strip()
    if not endpoint:
        raise StagerError("FERRY_S3_ENDPOINT is not set: no object store to talk to")
    access = os.environ.get("FERRY_S3_ACCESS_KEY", "")
    secret = os.environ.get("FERRY_S3_SECRET_KEY", "")
    if not access or not secret:
        raise StagerError(
            "FERRY_S3_ACCESS_KEY / FERRY_S3_SECRET_KEY are not set (check the Secret's keys)"
        )
    try:
        return S3Client(endpoint, access, secret, os.environ.get("FERRY_S3_REGION") or None)
    except StoreError as exc:
        raise StagerError(str(exc)) from None


def with_retries(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run fn; after a StoreUnavailableError wait backoff, 2*backoff, ... (+-20 %, capped) and try
    again, at most `retries` more times. The last StoreUnavailableError is raised, its message
    saying how many tries were made."""
    attempt = 0
    while True:
        try:
            return fn()
        except StoreUnavailableError as exc:
            if attempt >= retries:
                tries = attempt + 1
                raise StoreUnavailableError(
                    f"{exc} (gave up after {tries} tr{'y' if tries == 1 else 'ies'})"
                ) from None
            delay = min(BACKOFF_CAP_SECONDS, backoff * (2**attempt))
            sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto
            attempt += 1
