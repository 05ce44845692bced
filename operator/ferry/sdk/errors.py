"""The SDK's exceptions, each with the CLI exit code that stands for it.

Owns: the error vocabulary a user sees (one line, naming the cause) and the exit codes of
`ferry` (docs/cli.md lists them). Must not: import anything but the standard library.
"""

from __future__ import annotations

from typing import Any


class FerryError(Exception):
    """Something the user can act on; str() is one line naming the cause."""

    exit_code = 1


class UsageError(FerryError):
    """An argument that cannot be turned into a request (a bad label, input or grid)."""

    exit_code = 2


class NotFoundError(FerryError):
    """The Job, App, pod log or archived object does not exist."""

    exit_code = 3


class RefusedError(FerryError):
    """The apiserver (or the SDK, for an action the Job's state does not allow) refused."""

    exit_code = 4


class WaitTimeoutError(FerryError):
    """A wait ran out of time before the Job ended."""

    exit_code = 5


class JobFailedError(FerryError):
    """The Job ended Failed, TimedOut or Cancelled (raised by the CLI's wait, and by the SDK
    when asked to)."""

    exit_code = 6

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


class IntegrityError(FerryError):
    """A downloaded file does not match the manifest's sha256 or size, or a manifest path
    would escape the destination directory."""

    exit_code = 7


class ConfigError(FerryError):
    """No kubeconfig, or no object-store endpoint or credentials; the message names what."""

    exit_code = 8


class UnavailableError(FerryError):
    """The apiserver or the store could not be reached, or answered with a server error."""

    exit_code = 1


#: Exit codes by meaning, for the docs and the CLI.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "error (apiserver or store unreachable, anything else)": 1,
    "usage (bad arguments)": 2,
    "not found": 3,
    "refused": 4,
    "timed out waiting": 5,
    "Job failed (Failed, TimedOut or Cancelled)": 6,
    "integrity (sha256 mismatch, unsafe path)": 7,
    "configuration missing (kubeconfig, store)": 8,
    "interrupted (Ctrl+C)": 130,
}
