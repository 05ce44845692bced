"""Ferry's Python SDK: submit, follow and collect Jobs from a notebook or a script.

    from ferry.sdk import Client
    ferry = Client()                      # your kubeconfig's context and namespace
    job = ferry.submit("hello", {"who": "Ada"}, inputs={"data": "./data/"})
    job = ferry.wait(job, timeout=600)
    ferry.download(job, "out/", progress=True)

The store (for uploads and downloads) comes from FERRY_S3_ENDPOINT, FERRY_S3_ACCESS_KEY and
FERRY_S3_SECRET_KEY (or AWS_*), see ferry.sdk.settings. docs/sdk.md has the whole tour.
"""

from ferry.api import App, Job, State
from ferry.api.job import HistoryEntry
from ferry.sdk.client import Client, JobRef
from ferry.sdk.derive import JobEvent
from ferry.sdk.errors import (
    ConfigError,
    FerryError,
    IntegrityError,
    JobFailedError,
    NotFoundError,
    RefusedError,
    UnavailableError,
    UsageError,
    WaitTimeoutError,
)
from ferry.sdk.outputs import OutputFile, Outputs
from ferry.sdk.sweep import Sweep, SweepSummary
from ferry.sdk.transfer import DownloadResult

__all__ = [
    "App",
    "Client",
    "ConfigError",
    "DownloadResult",
    "FerryError",
    "HistoryEntry",
    "IntegrityError",
    "Job",
    "JobEvent",
    "JobFailedError",
    "JobRef",
    "NotFoundError",
    "OutputFile",
    "Outputs",
    "RefusedError",
    "State",
    "Sweep",
    "SweepSummary",
    "UnavailableError",
    "UsageError",
    "WaitTimeoutError",
]
