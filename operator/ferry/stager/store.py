"""The object store as the stager sees it: a client from FERRY_S3_* and the retry policy.

Owns: building the S3 client from the container's environment (endpoint, region, the
credentials the pod got by secretKeyRef, and FERRY_ALLOWED_STORE_ENDPOINTS, the trusted stores
the operator allows: the default store and its allow-list), with the address guard
(addresses.StoreGuard) on every connection; credentials are used only with a trusted store's
endpoint, any other endpoint gets anonymous requests (the operator's builder does not even give
the container credentials then). And retrying transient failures with exponential
backoff. Only StoreUnavailableError (unreachable, timeouts, 5xx) is retried; not-found and refused
credentials fail at once. One that is still unavailable after the retries becomes an OutageError
(`failure`): the operator waits the outage out. Must not: log or return credentials.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from ferry.api.endpoints import parse_endpoints
from ferry.api.names import ENV_ALLOWED_STORES
from ferry.clients.s3 import S3Client, StoreError, StoreUnavailableError
from ferry.stager.addresses import StoreGuard
from ferry.stager.errors import OutageError, StagerError

T = TypeVar("T")

BACKOFF_CAP_SECONDS = 30.0


#: The containers' variable naming the trusted stores (comma-separated endpoints).
ALLOWED_STORES = ENV_ALLOWED_STORES


def allowed_stores() -> tuple[str, ...]:
    try:
        return parse_endpoints(os.environ.get(ALLOWED_STORES, ""))
    except ValueError as exc:
        raise StagerError(f"{ALLOWED_STORES}: {exc}") from None


def client_from_env(field: str) -> S3Client:
    """The client for FERRY_S3_ENDPOINT; `field` is the Job field it came from, named when a
    connection is refused (e.g. "source.s3.endpoint")."""
    endpoint = os.environ.get("FERRY_S3_ENDPOINT", "").strip()
    if not endpoint:
        raise StagerError("FERRY_S3_ENDPOINT is not set: no object store to talk to")
    guard = StoreGuard.build(endpoint, field, allowed_stores())
    access = os.environ.get("FERRY_S3_ACCESS_KEY", "")
    secret = os.environ.get("FERRY_S3_SECRET_KEY", "")
    if not guard.trusted:
        access = secret = ""  # credentials go to trusted stores only
    elif not access or not secret:
        raise StagerError(
            "FERRY_S3_ACCESS_KEY / FERRY_S3_SECRET_KEY are not set (check the Secret's keys)"
        )
    try:
        return S3Client(
            endpoint, access, secret, os.environ.get("FERRY_S3_REGION") or None, guard=guard
        )
    except StoreError as exc:
        raise StagerError(str(exc)) from None


def failure(exc: StoreError, message: str) -> StagerError:
    """The stager's error for a store failure: an OutageError when the store is unavailable
    (it may come back), else a StagerError (refused credentials, a missing bucket, a 4xx)."""
    if isinstance(exc, StoreUnavailableError):
        return OutageError(message)
    return StagerError(message)


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
