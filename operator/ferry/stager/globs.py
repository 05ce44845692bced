"""Glob patterns over workspace-relative paths, as the App's outputs and the Job's archive use.

Owns: the meaning of a pattern. Paths and patterns are relative to the workdir and use `/`.
`*` matches within one path segment, `?` one character of a segment, `[abc]`, `[a-z]`,
`[!abc]` / `[^abc]` one character of a class (never `/`), and `**` any number of segments:
`**/x` matches `x` and `a/b/x`, `results/**` everything below `results/`, a lone `**`
everything. `*` and `?` match leading dots too (`**` archives hidden files). A leading `./` or
`/` is ignored (patterns are always relative to the workdir). Must not: touch the filesystem.
Python 3.11 has no glob.translate, hence this small translator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def _normalize(pattern: str) -> str:
    text = pattern.strip()
    while text.startswith("./"):
        text = text[2:]
    return text.lstrip("/")


def _char_class(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the class starting at pattern[start] == '['; None if it is not closed
    within its segment (a class never spans a `/`: then the `[` is a literal)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body_start = i
    # A ']' right after '[' or '[!' is a literal member.
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] not in "]/":
        i += 1
    if i >= len(pattern) or pattern[i] == "/":
        return None
    body = pattern[body_start:i]
    members = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            lo, hi = body[j], body[j + 2]
            if lo <= hi:
                members.append(f"{re.escape(lo)}-{re.escape(hi)}")
            j += 3
        else:
            members.append(re.escape(body[j]))
            j += 1
    inner = "".join(members)
    if negate:
        return f"[^/{inner}]", i + 1
    if not inner:
        return "(?!)", i + 1
    return f"(?!/)[{inner}]", i + 1


def translate(pattern: str) -> str:
    """The regular expression (for re.fullmatch) equivalent to `pattern`."""
    pat = _normalize(pattern)
    out: list[str] = []
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if i + 1 < n and pat[i + 1] == "*":
                j = i
                while j < n and pat[j] == "*":
                    j += 1
                at_segment_start = i == 0 or pat[i - 1] == "/"
                if at_segment_start and j < n and pat[j] == "/":
                    out.append("(?:[^/]*/)*")  # zero or more whole segments
                    i = j + 1
                else:
                    out.append(".*")
                    i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            translated = _char_class(pat, i)
            if translated is None:
                out.append(re.escape(c))
            else:
                out.append(translated[0])
                i = translated[1]
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern), re.DOTALL)


def match(path: str, pattern: str) -> bool:
    """Whether the relative path `path` (with `/` separators) matches `pattern`."""
    return _compiled(pattern).fullmatch(path) is not None


def selected(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Included by at least one pattern and excluded by none."""
    return any(match(path, p) for p in include) and not any(match(path, p) for p in exclude)
