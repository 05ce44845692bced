"""`stage-in`: put one input of a Job at /ferry/inputs/<name> and record what was staged.

Owns: each source kind's staging (below), the staging record records/inputs/<name>.json
({name, kind, source (no secrets), files: [{path, bytes, sha256}], bytes}), and the input's
error messages ("input 'model': s3://models/frame.tcl not found (NoSuchKey)"). A store or
HTTP server still unavailable after `FERRY_STAGE_RETRIES` quick retries is an OutageError (the
operator tries again later); a refusal (404, a wrong checksum, a refused address) is not.

    s3 key        the object, as the file <name>
    s3 prefix     every object under the prefix (read as a directory: a missing trailing `/`
                  is added), as files below the directory <name>, keys relative to the prefix
    http(s)       the body, as the file <name> (see http.py for the address checks)
    pvc           the file or directory /ferry/source/<name>/<path>, copied (see workspace.py
                  for symlinks: never followed out of the claim)
    configMap     the file /ferry/source/<name>/content (the key, projected by the kubelet)
    inline        the text, UTF-8

Staging writes to a hidden sibling first and renames it into place, so a restarted init
container replaces a half-staged input. File paths in the record are relative to the inputs
directory. Must not: follow object keys with `..` or empty segments out of the input's
directory, or write credentials or URL queries into the record or messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ferry.api.job import JobInput, S3Source
from ferry.clients.hashcopy import copy_hashed
from ferry.clients.s3 import Digest, S3Client, StoreError
from ferry.stager import http
from ferry.stager.errors import OutageError, StagerError
from ferry.stager.settings import Settings
from ferry.stager.store import BACKOFF_CAP_SECONDS, client_from_env, failure, with_retries
from ferry.stager.workspace import UnsafePathError, inside, open_inside, select


@dataclass
class Record:
    name: str
    kind: str
    source: dict[str, Any]
    files: list[tuple[str, Digest]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "files": [
                {"path": p, "bytes": d.bytes, "sha256": d.sha256}
                for p, d in sorted(self.files, key=lambda f: f[0])
            ],
            "bytes": sum(d.bytes for _, d in self.files),
        }
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def parse_input(text: str | None) -> JobInput:
    if not text:
        raise StagerError("FERRY_INPUT is not set: nothing to stage")
    try:
        return JobInput.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise StagerError(
            f"FERRY_INPUT is not a valid input: {where}: {first.get('msg', 'invalid')}"
        ) from None


def describe(item: JobInput) -> dict[str, Any]:
    """The source as recorded: everything but secrets and URL query strings."""
    src = item.source
    if src.s3 is not None:
        out = {"bucket": src.s3.bucket}
        if src.s3.key is not None:
            out["key"] = src.s3.key
        if src.s3.prefix is not None:
            out["prefix"] = _dir_prefix(src.s3.prefix)
        endpoint = src.s3.endpoint or os.environ.get("FERRY_S3_ENDPOINT")
        if endpoint:
            out["endpoint"] = endpoint
        region = src.s3.region or os.environ.get("FERRY_S3_REGION")
        if region:
            out["region"] = region
        return out
    if src.http is not None:
        out = {"url": http.display(src.http.url)}
        if src.http.sha256:
            out["sha256"] = src.http.sha256.lower()
        return out
    if src.pvc is not None:
        return {"claimName": src.pvc.claim_name, "path": src.pvc.path}
    if src.config_map is not None:
        return {"name": src.config_map.name, "key": src.config_map.key}
    return {"bytes": len((src.inline or "").encode())}


def _dir_prefix(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


def _relative_key(key: str, prefix: str, where: str) -> str | None:
    """The key's path below the prefix, or None for a directory marker; StagerError when it
    would leave the input's directory."""
    rel = key[len(prefix) :]
    if rel == "" or rel.endswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise StagerError(f"{where}: object key {key!r} has empty, '.' or '..' segments; refused")
    return rel


def _copy(fd: int, dest: Path) -> Digest:
    with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
        count, sha256 = copy_hashed(src, out, size_hint=os.fstat(src.fileno()).st_size)
    return Digest(count, sha256)


class Stager:
    """Stages one input; `run` returns its record (also written to records/inputs/<name>.json)."""

    def __init__(
        self,
        item: JobInput,
        settings: Settings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.item = item
        self.settings = settings
        self.sleep = sleep
        self.label = f"input '{item.name}'"
        self.record = Record(item.name, item.source.kind, describe(item))

    def fail(self, message: str) -> StagerError:
        return StagerError(f"{self.label}: {message}")

    def run(self) -> Record:
        inputs = self.settings.inputs_dir
        try:
            inputs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.fail(f"cannot create {inputs}: {exc.strerror}") from None
        final = inputs / self.item.name
        temp = inputs / f".staging-{self.item.name}"
        _remove(temp)
        try:
            self._stage(temp)
            _remove(final)
            os.replace(temp, final)
        except OSError as exc:
            raise self.fail(f"cannot write {exc.filename or final}: {exc.strerror}") from None
        finally:
            _remove(temp)
        self._write_record()
        return self.record

    def _stage(self, temp: Path) -> None:
        src = self.item.source
        name = self.item.name
        if src.s3 is not None:
            self._s3(src.s3, temp)
        elif src.http is not None:
            self.record.files.append((name, self._http(src.http.url, src.http.sha256, temp)))
        elif src.pvc is not None:
            self._pvc(src.pvc.claim_name, src.pvc.path, temp)
        elif src.config_map is not None:
            root = self.settings.source_dir / name
            try:
                fd = open_inside(root, root / "content")
            except (OSError, UnsafePathError):
                raise self.fail(
                    f"configMap {src.config_map.name}: key {src.config_map.key!r} not found"
                ) from None
            self.record.files.append((name, _copy(fd, temp)))
        else:
            data = (src.inline or "").encode()
            temp.write_bytes(data)
            self.record.files.append((name, Digest(len(data), hashlib.sha256(data).hexdigest())))

    # -- http --------------------------------------------------------------------------

    def _http(self, url: str, sha256: str | None, temp: Path) -> Digest:
        """Fetch, trying again (as S3 reads are) while the server is unavailable; then an
        OutageError, which the operator waits out. A refusal fails at once."""
        tries = self.settings.stage_retries + 1
        for n in range(tries):
            try:
                return http.fetch(url, temp, self.settings.http, sha256)
            except http.FetchError as exc:
                if not exc.unavailable:
                    raise self.fail(str(exc)) from None
                if n + 1 == tries:
                    s = "y" if tries == 1 else "ies"
                    raise OutageError(
                        f"{self.label}: {exc} (gave up after {tries} tr{s})"
                    ) from None
                delay = min(BACKOFF_CAP_SECONDS, self.settings.backoff_seconds * 2**n)
                self.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    # -- s3 ----------------------------------------------------------------------------

    def _retrying(self, fn: Any) -> Any:
        try:
            return with_retries(
                fn,
                retries=self.settings.stage_retries,
                backoff=self.settings.backoff_seconds,
                sleep=self.sleep,
            )
        except StoreError as exc:
            raise failure(exc, f"{self.label}: {exc}") from None

    def _s3(self, source: S3Source, temp: Path) -> None:
        client = self._client()
        name = self.item.name
        if source.key is not None:
            key = source.key
            got = self._retrying(lambda: client.get_object_to_file(source.bucket, key, temp))
            self.record.files.append((name, got))
            return
        prefix = _dir_prefix(source.prefix or "")
        where = f"s3://{source.bucket}/{prefix}"
        listed = self._retrying(lambda: client.list_objects(source.bucket, prefix))
        wanted: list[tuple[str, str]] = []
        for obj in listed:
            rel = _relative_key(obj.key, prefix, self.label)
            if rel is not None:
                wanted.append((obj.key, rel))
        if not wanted:
            raise self.fail(f"no objects under {where}")
        files = {rel for _, rel in wanted}
        for _, rel in wanted:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent in files:
                    raise self.fail(
                        f"{where}: {parent!r} is both an object and a prefix of {rel!r}"
                    )
        temp.mkdir()
        for d in sorted({os.path.dirname(rel) for _, rel in wanted} - {""}):
            (temp / d).mkdir(parents=True, exist_ok=True)

        def one(key: str, rel: str) -> tuple[str, Digest]:
            got = self._retrying(lambda: client.get_object_to_file(source.bucket, key, temp / rel))
            return f"{name}/{rel}", got

        with ThreadPoolExecutor(max_workers=self.settings.stage_parallel) as pool:
            results = list(pool.map(lambda kr: one(*kr), wanted))
        self.record.files.extend(results)

    def _client(self) -> S3Client:
        """The store named by FERRY_S3_* (the builder resolves the source's endpoint, region
        and Secret, or the operator's default store, into those variables)."""
        try:
            return client_from_env("source.s3.endpoint")
        except StagerError as exc:
            raise self.fail(str(exc)) from None

    # -- pvc ---------------------------------------------------------------------------

    def _pvc(self, claim: str, path: str, temp: Path) -> None:
        root = self.settings.source_dir / self.item.name
        root_real = os.path.realpath(root)
        wanted = root / path
        where = f"pvc {claim}: {path}"
        if not os.path.lexists(wanted):
            raise self.fail(f"{where} not found")
        real = os.path.realpath(wanted)
        if not inside(root_real, real):
            raise self.fail(f"{where} resolves outside the claim; refused")
        if os.path.isdir(real):
            selection = select(Path(real), ["**"], boundary=root, boundary_name="the claim")
            temp.mkdir()
            for entry in selection.files:
                dest = temp / entry.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = open_inside(root, entry.source)
                except (OSError, UnsafePathError) as exc:
                    self.record.skipped.append({"path": entry.path, "reason": str(exc)})
                    continue
                self.record.files.append((f"{self.item.name}/{entry.path}", _copy(fd, dest)))
            self.record.skipped.extend(
                {"path": s.path, "reason": s.reason} for s in selection.skipped
            )
            return
        try:
            fd = open_inside(root, Path(real))
        except UnsafePathError:
            raise self.fail(f"{where} is not a regular file") from None
        self.record.files.append((self.item.name, _copy(fd, temp)))

    # -- record ------------------------------------------------------------------------

    def _write_record(self) -> None:
        directory = self.settings.records_dir / "inputs"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            temp = directory / f".{self.item.name}.json.tmp"
            temp.write_text(json.dumps(self.record.wire(), indent=2, sort_keys=True) + "\n")
            os.replace(temp, directory / f"{self.item.name}.json")
        except OSError as exc:
            raise self.fail(f"cannot write its staging record: {exc.strerror}") from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def stage(item: JobInput, settings: Settings) -> Record:
    return Stager(item, settings).run()
