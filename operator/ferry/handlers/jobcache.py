"""The operator's memory of Jobs, fed by the Job watch and by its own status writes.

Owns: the newest version seen of every Job in the watched namespaces, kept in one of two
forms. A Job Ferry may still act on is kept whole (without managedFields and kubectl's
last-applied copy of the spec, which Ferry never reads). A terminal Job a pass found nothing
left to do for is kept *at rest*: its resourceVersion and what its children read of it as a
parent (a `ParentView`, a few hundred bytes instead of tens of kilobytes), so that an operator
watching 10,000 finished Jobs holds kilobytes per Job. A terminal Job a listing brings (all
of them at a start) is kept at rest *packed* until its first pass: with the whole Job as
compressed JSON (a few hundred bytes: `Packer`), made whole again when the pass asks for it, so that
50,000 finished Jobs listed at once are never 50,000 parsed objects at once (the process
would keep that peak as its resident size). A Job at rest that needs a pass again
(a watch event with a newer version brings it back whole; a pod event or a timer does not) is
read afresh by the reconciler. Deletions are final: the UID of a Job seen deleted (by its
DELETED event, or by its absence from a listing: a tombstone) is remembered for
`TOMBSTONE_SECONDS`, and no later write, listing or stale event of that UID brings it back.
Also the statuses the executor holds (`Held`: routine progress not written yet,
`ferry.decisions.holding`): the Job is kept with the held status in place of the written one,
and a newer version from the watch whose status is still the one written gets it too (a label
added meanwhile does not undo it); one whose status is another's drops it. Must not: decide
anything, or talk to the API.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic_core

from ferry.decisions import parse
from ferry.decisions.observation import ParentView

Key = tuple[str, str]
Obj = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: How long the UID of a deleted object is remembered: longer than any answer of the
#: apiserver (a LIST, a status write) that began before the deletion can take to arrive.
TOMBSTONE_SECONDS = 600.0
TERMINAL = frozenset({"Finished", "Failed", "TimedOut", "Cancelled"})


@dataclass(frozen=True, slots=True)
class Held:
    """A status decided and not written yet: `status` over `written` (as in the API), since
    `since` (monotonic seconds)."""

    status: Obj
    written: Obj
    since: float


@dataclass(frozen=True, slots=True)
class Rested:
    """A terminal Job with nothing left to do, as remembered; `packed`: the whole Job
    (compressed JSON) while its first pass is still owed."""

    rv: int
    parent: ParentView
    uid: str = ""
    packed: bytes | None = None

    @property
    def state(self) -> str:
        return self.parent.state.value if self.parent.state else ""


def resource_version(obj: Obj | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


def uid_of(obj: Obj | None) -> str:
    return str((obj or {}).get("metadata", {}).get("uid") or "")


class Tombstones:
    """UIDs of objects seen deleted, remembered for `seconds` (a UID is never reused)."""

    def __init__(
        self, seconds: float = TOMBSTONE_SECONDS, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._since: dict[str, float] = {}

    def add(self, uid: str) -> None:
        if not uid:
            return
        now = self._monotonic()
        self._since.pop(uid, None)
        self._since[uid] = now
        # Oldest first (insertion order): drop those past their time.
        for old in list(self._since):
            if now - self._since[old] < self.seconds:
                break
            del self._since[old]

    def __contains__(self, uid: object) -> bool:
        return bool(uid) and uid in self._since

    def __len__(self) -> int:
        return len(self._since)


def vanished(
    known: Iterable[tuple[tuple[str, str], int]],
    listed: frozenset[tuple[str, str]],
    list_rv: int,
    namespace: str | None,
) -> list[tuple[str, str]]:
    """The (namespace, name)s known at a version no newer than a listing at `list_rv` (of
    `namespace`, or of all when None) that the listing lacks: deleted meanwhile. One known at a
    newer version was made (or remade) after the listing and is kept."""
    return [
        name
        for name, rv in known
        if (namespace is None or name[0] == namespace) and rv <= list_rv and name not in listed
    ]


def state_of(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("state") or "")


def app_name(obj: Obj) -> str:
    return str(((obj.get("spec") or {}).get("appRef") or {}).get("name", ""))


def slim(obj: Obj) -> Obj:
    """The Job as kept: without managedFields and kubectl's last-applied copy of the spec
    (which dominate memory with thousands of Jobs). The original is not changed."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if "managedFields" not in meta and LAST_APPLIED not in annotations:
        return obj
    slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if LAST_APPLIED in annotations:
        slim_meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": slim_meta}


#: zlib's raw deflate with a 32 KiB window (the most a dictionary can use) at level 1.
_WBITS = -15
_LEVEL = 1


class Packer:
    """Whole Jobs as compressed JSON. The first Job packed is the dictionary for all of them:
    the Jobs one operator sees share most of their bytes (field names, condition types and
    messages, the App they ran), so a finished Job packs to about 130 bytes against 900 alone
    (tests/unit/test_jobcache.py), and faster (no fresh compressor tables per Job to fill)."""

    def __init__(self) -> None:
        self._zdict: bytes | None = None

    def pack(self, obj: Obj) -> bytes | None:
        """The Job packed; None when it is not UTF-8 text (a lone surrogate, which the
        apiserver never sends): such a Job is kept whole."""
        try:
            data = pydantic_core.to_json(obj)
        except ValueError:
            return None
        if self._zdict is None:
            self._zdict = data[-(1 << -_WBITS) :]
        out = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, zdict=self._zdict)
        return out.compress(data) + out.flush()

    def unpack(self, data: bytes) -> Obj:
        inflate = zlib.decompressobj(_WBITS, zdict=self._zdict or b"")
        obj: Obj = pydantic_core.from_json(inflate.decompress(data) + inflate.flush())
        return obj


class JobCache:
    """Every known Job, whole or at rest, by (namespace, name)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._whole: dict[Key, Obj] = {}
        self._rested: dict[Key, Rested] = {}
        self.deleted = Tombstones(monotonic=monotonic)
        self._held: dict[Key, Held] = {}
        self._packer = Packer()

    def __len__(self) -> int:
        return len(self._whole) + len(self._rested)

    def __contains__(self, key: object) -> bool:
        return key in self._whole or key in self._rested

    def get(self, key: Key) -> Obj | None:
        """The whole Job (unpacked, when it was kept packed), or None when it is unknown or
        at rest."""
        whole = self._whole.get(key)
        if whole is None:
            rested = self._rested.get(key)
            if rested is not None and rested.packed is not None:
                whole = self._whole[key] = self._packer.unpack(rested.packed)
                del self._rested[key]
        return whole

    def rv(self, key: Key) -> int:
        whole = self._whole.get(key)
        if whole is not None:
            return resource_version(whole)
        rested = self._rested.get(key)
        return rested.rv if rested is not None else 0

    def put(self, key: Key, obj: Obj, *, refresh: bool = False, listed: bool = False) -> bool:
        """Keep `obj` when it is newer than what is known (True), or, with `refresh` (a
        Job read afresh to work on), also when it is the same version (whole again). A Job
        seen deleted is never kept again (a status write that raced its deletion, a listing
        begun before it). A terminal Job from a listing (`listed`) is kept packed."""
        if uid_of(obj) in self.deleted:
            return False
        known = self.rv(key) if key in self else -1
        rv = resource_version(obj)
        if rv < known or (rv == known and not refresh):
            return False
        self._rested.pop(key, None)
        held = self._held.get(key)
        if held is not None:
            if (obj.get("status") or {}) == held.written:
                obj = {**obj, "status": held.status}
            else:
                del self._held[key]  # written meanwhile, by another: what it says stands
        kept = slim(obj)
        packed = None
        if listed and key not in self._held and state_of(kept) in TERMINAL:
            packed = self._packer.pack(kept)
        if packed is not None:
            self._whole.pop(key, None)
            self._rested[key] = Rested(rv, parse.parent_view(kept), uid_of(kept), packed)
        else:
            self._whole[key] = kept
        return rv > known

    def hold(self, key: Key, status: Obj, written: Obj, since: float) -> bool:
        """Keep the whole Job with `status` in place of `written` (its status in the API);
        False when the Job is not kept whole (nothing is held then)."""
        whole = self._whole.get(key)
        if whole is None:
            return False
        self._held[key] = Held(status, written, since)
        self._whole[key] = {**whole, "status": status}
        return True

    def held(self, key: Key) -> Held | None:
        """The status held for the Job, if any."""
        return self._held.get(key)

    def release(self, key: Key) -> None:
        """The held status is written (or given up): the Job is kept as the API has it."""
        self._held.pop(key, None)

    def rest(self, key: Key) -> bool:
        """Keep the (terminal) Job at rest from now on; False when it is not whole or not
        terminal."""
        whole = self._whole.get(key)
        if whole is None or state_of(whole) not in TERMINAL:
            return False
        self._rested[key] = Rested(resource_version(whole), parse.parent_view(whole), uid_of(whole))
        del self._whole[key]
        return True

    def is_packed(self, key: Key) -> bool:
        """At rest packed: listed terminal, its first pass still owed."""
        rested = self._rested.get(key)
        return rested is not None and rested.packed is not None

    def is_rested(self, key: Key) -> bool:
        """At rest, with no pass owed (a packed Job is owed one)."""
        rested = self._rested.get(key)
        return rested is not None and rested.packed is None

    def drop(self, key: Key) -> None:
        """Forget the Job (to be read afresh); not a deletion."""
        self._whole.pop(key, None)
        self._rested.pop(key, None)

    def delete(self, key: Key, obj: Obj | None = None) -> Obj | None:
        """The Job is deleted (its DELETED event, `obj`, or a tombstone): forgotten, and its
        UID never kept again. Returns the whole Job as it was known, if it was."""
        whole = self._whole.pop(key, None)
        rested = self._rested.pop(key, None)
        self._held.pop(key, None)
        for uid in (uid_of(obj), uid_of(whole), rested.uid if rested else ""):
            self.deleted.add(uid)
        return whole

    def relisted(
        self, list_rv: int, listed: frozenset[Key], namespace: str | None
    ) -> list[tuple[Key, Obj | None]]:
        """A listing at `list_rv` is over: the Jobs it lacks that were known at that version or
        older are deleted (tombstones), each with the whole Job as it was known."""
        gone = vanished(self.versions().items(), listed, list_rv, namespace)
        return [(key, self.delete(key)) for key in gone]

    def state(self, key: Key) -> str | None:
        """The Job's status.state ("" before its first status), None when unknown."""
        whole = self._whole.get(key)
        if whole is not None:
            return state_of(whole)
        rested = self._rested.get(key)
        return rested.state if rested is not None else None

    def terminal(self, key: Key) -> bool:
        return self.state(key) in TERMINAL

    def parent(self, key: Key) -> ParentView | None:
        """What a child Job reads of this one as its parent; None when unknown."""
        whole = self._whole.get(key)
        if whole is not None:
            return parse.parent_view(whole)
        rested = self._rested.get(key)
        return rested.parent if rested is not None else None

    def active(self) -> Iterator[tuple[Key, Obj]]:
        """The whole Jobs that are not terminal."""
        for key, obj in list(self._whole.items()):
            if state_of(obj) not in TERMINAL:
                yield key, obj

    def states(self) -> Counter[str]:
        """How many Jobs are in each state ("" for no status yet)."""
        counts: Counter[str] = Counter(map(state_of, list(self._whole.values())))
        # Counted by the enum member, named once per state: most Jobs are at rest.
        for state, n in Counter(r.parent.state for r in list(self._rested.values())).items():
            counts[state.value if state else ""] += n
        return counts

    def versions(self) -> dict[Key, int]:
        out = {k: resource_version(o) for k, o in list(self._whole.items())}
        out.update((k, r.rv) for k, r in list(self._rested.items()))
        return out
