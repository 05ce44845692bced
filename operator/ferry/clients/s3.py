"""S3 access for the stager: the only module that imports `minio`.

Owns: building a client from an endpoint URL and credentials (none: anonymous requests), with
an optional address guard on every connection (netguard.py), streaming an object to a file
(hashing it on the way), listing a prefix, uploading a file (multipart for large ones, hashing
the bytes as they are read) or a small byte string, and mapping every failure to one of the
exceptions below with a message a person can act on. Must not: retry (the caller decides how
long to keep trying: StoreUnavailableError is the only retryable error) or decide what to copy.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from ferry.clients.hashcopy import copy_hashed, declared_length, raw_body
from ferry.clients.netguard import AddressRefusedError, Guard, guarded_pool_manager

#: The smallest part of a multipart upload; a file larger than its part size goes in parts.
#: Small enough that glibc serves each part's buffer from memory it reuses (under its 32 MiB
#: mmap ceiling): 64 MiB parts were mapped fresh and zeroed by the kernel for every part,
#: 1-4 s of kernel CPU per GiB uploaded on the benchmark's VM against 0.3-0.5 s at 8 MiB.
MIN_PART_SIZE = 8 * 1024 * 1024
#: S3's limit on the parts of one upload.
MAX_PARTS = 10_000
#: Parts of one multipart upload sent at the same time.
PART_PARALLEL = 2
_T = TypeVar("_T")


def part_size(length: int) -> int:
    """The part size for an upload of `length` bytes: MIN_PART_SIZE, or larger (whole MiB)
    when that many parts would pass MAX_PARTS (8 MiB parts cover 80 GB; S3's 5 TiB object
    needs 525 MiB ones)."""
    mib = 1024 * 1024
    needed = -(-length // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-needed // mib) * mib)


_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
    }
)
_RETRYABLE = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "XMinioServerNotInitialized",
        "XMinioReadQuorum",
        "XMinioWriteQuorum",
        "OperationTimedOut",
    }
)


class StoreError(Exception):
    """An object-store operation failed; the message says what and why, on one line."""


class StoreNotFoundError(StoreError):
    """The bucket or the object does not exist."""


class StoreAccessDeniedError(StoreError):
    """The credentials were refused (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or answered with a transient error; worth retrying."""


class StoreRefusedError(StoreError):
    """The address guard refused a connection (say, to a metadata or loopback address)."""


@dataclass(frozen=True)
class Digest:
    """What was transferred: its size and SHA-256 (hex)."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """`http://host:port` → ("host:port", secure=False); https (or no scheme) → secure."""
    text = endpoint.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StoreError(f"S3 endpoint {endpoint!r} is not an http(s)://host[:port] URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise StoreError(f"S3 endpoint {endpoint!r} must not have a path")
    if "@" in parts.netloc:
        raise StoreError("S3 endpoint must not carry credentials; use the access/secret keys")
    return parts.netloc, parts.scheme == "https"


class _StoredBody:
    """A urllib3 response read as stored (no Content-Encoding decoding), as `readinto`."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def readinto(self, buffer: memoryview, /) -> int:
        data = self.response.read(len(buffer), decode_content=False)
        buffer[: len(data)] = data
        return len(data)


class _HashingReader:
    """A read-only file wrapper that hashes every byte read (reads are sequential)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data


class S3Client:
    """A small, typed face over the minio client, with errors mapped to StoreError kinds."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        pool_size: int = 16,
        guard: Guard | None = None,
    ) -> None:
        host, secure = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self.anonymous = not (access_key and secret_key)
        # No retries inside urllib3: the caller owns the retry budget, so it is predictable.
        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "maxsize": pool_size,
            "retries": urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0),
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
        }
        http = guarded_pool_manager(guard, **options) if guard else urllib3.PoolManager(**options)
        self._minio = Minio(
            host,
            access_key=None if self.anonymous else access_key,
            secret_key=None if self.anonymous else secret_key,
            secure=secure,
            region=region or None,
            http_client=http,
        )

    # -- reads -------------------------------------------------------------------------

    def get_object_to_file(self, bucket: str, key: str, path: Path) -> Digest:
        """Stream s3://bucket/key into `path` (via path.part, renamed at the end)."""
        where = f"s3://{bucket}/{key}"
        part = path.with_name(path.name + ".part")

        def run() -> Digest:
            response = self._minio.get_object(bucket, key)
            length = declared_length(response.headers.get("Content-Length"))
            try:
                # Raw bytes as stored: straight from the socket into reused buffers when
                # nothing needs decoding, otherwise through urllib3 without decoding.
                body = raw_body(response) or _StoredBody(response)
                with open(part, "wb") as out:
                    count, sha256 = copy_hashed(body, out, size_hint=length)
            finally:
                response.close()
                response.release_conn()
            if length is not None and count != length:
                raise StoreUnavailableError(
                    f"{where}: the connection ended after {count} of {length} bytes"
                )
            os.replace(part, path)
            return Digest(count, sha256)

        try:
            return self._call(where, run)
        finally:
            part.unlink(missing_ok=True)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        def run() -> bytes:
            response = self._minio.get_object(bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return self._call(f"s3://{bucket}/{key}", run)

    def list_objects(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix` (recursively), in key order."""

        def run() -> list[ObjectInfo]:
            found: Iterator[Any] = self._minio.list_objects(bucket, prefix=prefix, recursive=True)
            return [ObjectInfo(str(o.object_name), int(o.size or 0)) for o in found if not o.is_dir]

        return self._call(f"s3://{bucket}/{prefix}", run)

    def bucket_exists(self, bucket: str) -> bool:
        return self._call(f"s3://{bucket}", lambda: bool(self._minio.bucket_exists(bucket)))

    # -- writes ------------------------------------------------------------------------

    def make_bucket(self, bucket: str) -> None:
        def run() -> None:
            if not self._minio.bucket_exists(bucket):
                self._minio.make_bucket(bucket)

        self._call(f"s3://{bucket}", run)

    def put_stream(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        length: int,
        content_type: str = "application/octet-stream",
    ) -> Digest:
        """Upload `length` bytes of `stream`, as fput_object does (multipart above
        `part_size(length)`, PART_PARALLEL parts at a time), hashing the bytes as they are
        read."""
        reader = _HashingReader(stream)

        def run() -> Digest:
            self._minio.put_object(
                bucket,
                key,
                reader,  # type: ignore[arg-type]  # duck-typed: only read() is used
                length,
                content_type=content_type,
                part_size=part_size(length),
                num_parallel_uploads=PART_PARALLEL,
            )
            return Digest(reader.count, reader.hash.hexdigest())

        return self._call(f"s3://{bucket}/{key}", run)

    def put_file(
        self, bucket: str, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> Digest:
        with open(path, "rb") as stream:
            return self.put_stream(
                bucket, key, stream, os.fstat(stream.fileno()).st_size, content_type
            )

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> Digest:
        return self.put_stream(bucket, key, io.BytesIO(data), len(data), content_type)

    # -- errors ------------------------------------------------------------------------

    def _call(self, where: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except AddressRefusedError as exc:
            raise StoreRefusedError(f"{where}: {exc}") from None
        except S3Error as exc:
            raise _from_s3_error(where, exc) from None
        except ServerError as exc:
            raise StoreUnavailableError(
                f"{where}: the store answered HTTP {exc.status_code} ({_first_line(exc)})"
            ) from None
        except InvalidResponseError as exc:
            raise StoreUnavailableError(
                f"{where}: unexpected answer from the store: {exc}"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailableError(
                f"{where}: cannot reach {self.endpoint}: {_connection_reason(exc)}"
            ) from None
        except (ConnectionError, TimeoutError) as exc:
            raise StoreUnavailableError(f"{where}: cannot reach {self.endpoint}: {exc}") from None
        except MinioException as exc:
            raise StoreError(f"{where}: {_first_line(exc)}") from None
        except ValueError as exc:  # minio's own argument checks (bucket/object names)
            raise StoreError(f"{where}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connection_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason is not None and reason is not exc:
        return _connection_reason(reason)
    text = _first_line(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return text


def _from_s3_error(where: str, exc: S3Error) -> StoreError:
    code = exc.code or "Error"
    message = (exc.message or "").strip()
    detail = f"{code}: {message}" if message else code
    if code in _NOT_FOUND:
        what = "not found: the bucket does not exist" if code == "NoSuchBucket" else "not found"
        return StoreNotFoundError(f"{where} {what} ({detail})")
    if code in _DENIED:
        return StoreAccessDeniedError(f"{where}: access denied ({detail})")
    status = exc.response.status if exc.response is not None else 0
    if code in _RETRYABLE or status >= 500:
        return StoreUnavailableError(f"{where}: the store answered {detail}")
    return StoreError(f"{where}: {detail}")
