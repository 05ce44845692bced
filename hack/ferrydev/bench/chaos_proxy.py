"""A fault-injecting HTTPS reverse proxy between the operator and the real kube-apiserver.

Owns: `FaultProxy` (an asyncio server in a thread of its own, serving TLS with the
apiserver's own serving certificate on another loopback port, one request per connection,
forwarded to the apiserver with `Connection: close`), the choice of a fault for a share of
the requests (`Faults`), a kubeconfig that points at the proxy, and its count of what it did.

The faults are those a client of a real apiserver meets: a 409 Conflict on an update or
patch, a 429 with Retry-After, a 500, each before the request reaches the apiserver; a 500
or a dropped connection *after* it did (the write happened, its answer was lost), and a
request held, then dropped, unanswered (a timeout). Watches are never faulted: they stream
through untouched.

Must not: change a request that goes through, or listen anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferrydev.cluster import ClusterState
from ferrydev.processes import free_port

#: The faults, each with the HTTP code the client sees (0: the connection drops).
BEFORE = ("conflict", "throttled", "error", "timeout")  # the apiserver never sees the request
AFTER = ("error-after", "dropped-after")  # the apiserver did the request; its answer is lost
KINDS = BEFORE + AFTER
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Faults:
    """A share (0..1) of the non-watch requests gets a fault, drawn from `kinds`."""

    share: float = 0.1
    kinds: tuple[str, ...] = KINDS
    hold_seconds: float = 3.0  # how long a "timeout" holds the request before dropping it
    seed: int = 0


def _status(code: int, reason: str, message: str) -> bytes:
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
            **({"details": {"retryAfterSeconds": 1}} if code == 429 else {}),
        }
    ).encode()
    phrase = {409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}[code]
    head = (
        f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        + ("Retry-After: 1\r\n" if code == 429 else "")
        + "\r\n"
    )
    return head.encode() + body


class FaultProxy:
    """The proxy, started with `start()` and stopped with `stop()`; `counts` says what it did
    (`forwarded` and one key per fault kind)."""

    def __init__(self, state: ClusterState, faults: Faults, out_dir: Path) -> None:
        self.state = state
        self.faults = faults
        self.port = free_port()
        self.out_dir = out_dir
        self.counts: Counter[str] = Counter()
        self.enabled = threading.Event()  # faults only while set; forwarding always
        self._rng = random.Random(faults.seed)  # noqa: S311 - reproducible faults
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        pki = Path(state.root) / "pki" / "serving"
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self._client_ctx = ssl.create_default_context(cafile=str(pki / "apiserver.crt"))
        self._client_ctx.check_hostname = False

    @property
    def server(self) -> str:
        return f"https://{self.state.apiserver_host}:{self.port}"

    def kubeconfig(self) -> Path:
        """A copy of the cluster's kubeconfig that points at the proxy."""
        config: dict[str, Any] = json.loads(self.state.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = self.server
        path = self.out_dir / "kubeconfig-proxy.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._handle, self.state.apiserver_host, self.port, ssl=self._server_ctx
                )
            )
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name="fault proxy")
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the fault proxy did not start")

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    # ------------------------------------------------------------------ requests

    def _choose(self, method: str, target: str) -> str | None:
        if not self.enabled.is_set() or "watch=true" in target or "watch=1" in target:
            return None
        with self._lock:
            if self._rng.random() >= self.faults.share:
                return None
            kinds = [k for k in self.faults.kinds if k != "conflict" or method in ("PUT", "PATCH")]
            if method not in WRITES:
                kinds = [k for k in kinds if k not in AFTER]
            return self._rng.choice(kinds) if kinds else None

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # held until it ends: asyncio keeps only a weak reference
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [ln for ln in lines[1:] if ln]
            length = 0
            kept = []
            for h in headers:
                name, _, value = h.partition(":")
                low = name.strip().lower()
                if low == "content-length":
                    length = int(value.strip())
                if low in ("connection", "keep-alive"):
                    continue
                kept.append(h)
            body = await reader.readexactly(length) if length else b""
            fault = self._choose(method, target)
            if fault in BEFORE:
                self._count(fault)
                if fault == "timeout":
                    await asyncio.sleep(self.faults.hold_seconds)
                    return
                code, reason = {
                    "conflict": (409, "Conflict"),
                    "throttled": (429, "TooManyRequests"),
                    "error": (500, "InternalError"),
                }[fault]
                writer.write(_status(code, reason, f"injected by the chaos proxy: {fault}"))
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection(
                self.state.apiserver_host, self.state.apiserver_port, ssl=self._client_ctx
            )
            request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")
            upstream.write(request + body)
            await upstream.drain()
            if fault in AFTER:
                self._count(fault)
                await up_reader.read()  # the apiserver answered in full: the write happened
                if fault == "error-after":
                    writer.write(_status(500, "InternalError", "injected after the request"))
                    await writer.drain()
                return
            self._count("forwarded")
            # Relay the answer (a watch streams for minutes) until it ends or the client
            # goes away (it sends nothing more on this connection: EOF means gone).
            pump = asyncio.ensure_future(self._pump(up_reader, writer))
            gone = asyncio.ensure_future(reader.read(1))
            _, pending = await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            for w in (upstream, writer):
                if w is not None:
                    w.close()
            if task is not None:
                self._tasks.discard(task)
