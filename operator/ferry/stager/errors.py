"""The exceptions the stager expects: a failure with a one-line, human-readable cause.

Owns: StagerError and OutageError. Every expected failure (a missing object, a wrong checksum,
a refused address, bad credentials) is raised as a StagerError, and the CLI turns it into a
termination message and exit code 1, never a traceback. A store or an input server that stays
unavailable (unreachable, timing out, answering 5xx) after the stager's own quick retries is an
OutageError: exit code `names.EXIT_UNAVAILABLE`, which the operator waits out with a backoff
instead of failing the Job.
"""

from __future__ import annotations


class StagerError(Exception):
    """An expected failure; str(exc) is the whole message, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class OutageError(StagerError):
    """The store or input server is unavailable (not refusing: unreachable, timing out, 5xx);
    worth trying again later."""
