"""The one exception the stager expects: a failure with a one-line, human-readable cause.

Owns: StagerError. Every expected failure (a missing object, a wrong checksum, a refused
address, bad credentials, a store that stays down) is raised as one, and the CLI turns it into
a termination message and exit code 1, never a traceback.
"""

from __future__ import annotations


class StagerError(Exception):
    """An expected failure; str(exc) is the whole message, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
