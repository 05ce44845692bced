"""`ferry.sdk.Client`: Ferry's Jobs from a notebook or a script, on the user's own kubeconfig
and object-store credentials.

Owns: the Job verbs — submit (local files and directories uploaded first), get, list, wait
(on a watch), cancel, suspend, resume, extend, rerun, events, timeline, apps — and
`sync_context`. Logs, outputs/download and sweeps are in their own modules and reached
through the same Client. Must not: import kubernetes or minio (ferry.clients does the I/O)
or decide anything the operator decides.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ferry.api import App, Job, JobSpec
from ferry.api.common import API_VERSION, MAX_RUN_SECONDS
from ferry.api.job import HistoryEntry
from ferry.clients.user import UserKube
from ferry.clients.userstore import UserStore
from ferry.sdk import derive, query, sources, transfer, watching
from ferry.sdk.derive import JobEvent
from ferry.sdk.errors import FerryError, RefusedError, UsageError
from ferry.sdk.outputs import Outputs
from ferry.sdk.progress import Progress
from ferry.sdk.settings import StoreSettings
from ferry.sdk.translate import translated

if TYPE_CHECKING:
    from ferry.sdk.sweep import Sweep

#: A Job by name (in the client's namespace) or as returned by the client.
JobRef = str | Job


def to_job(obj: Mapping[str, Any]) -> Job:
    try:
        return Job.model_validate(obj)
    except ValidationError as exc:
        name = (obj.get("metadata") or {}).get("name", "?")
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise FerryError(
            f"Job {name}: cannot read it ({where}: {first.get('msg')}); is this ferry as new "
            "as the operator?"
        ) from None


def name_of(job: JobRef) -> str:
    return job if isinstance(job, str) else str(job.metadata.get("name", ""))


class Client:
    """Ferry's Jobs in one namespace (the kubeconfig context's unless given).

    >>> from ferry.sdk import Client
    >>> ferry = Client()
    >>> job = ferry.submit("hello", {"who": "Ada"})
    >>> job = ferry.wait(job, timeout=600)
    >>> ferry.download(job, "results/")
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        with translated():
            self.kube = UserKube(kubeconfig, context)
        self.namespace: str = namespace or self.kube.namespace
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._store: UserStore | None = None
        self._settings: StoreSettings | None = None
        self._tracked: list[list[tuple[str, str]]] = []

    # ---------------------------------------------------------------- plumbing

    def _ns(self, namespace: str | None, job: JobRef | None = None) -> str:
        if isinstance(job, Job) and job.metadata.get("namespace"):
            return str(job.metadata["namespace"])
        return namespace or self.namespace

    @property
    def settings(self) -> StoreSettings:
        if self._settings is None:
            self._settings = StoreSettings.from_env(self._env)
        return self._settings

    @property
    def store(self) -> UserStore:
        """The object store, as FERRY_S3_* (or AWS_*) describe it; ConfigError if unset."""
        if self._store is None:
            s = self.settings
            with translated():
                self._store = UserStore(s.endpoint, s.access_key, s.secret_key, s.region)
        return self._store

    def _raw(self, job: JobRef, namespace: str | None = None) -> dict[str, Any]:
        with translated():
            return self.kube.get("Job", self._ns(namespace, job), name_of(job))

    # ---------------------------------------------------------------- reading

    def get(self, job: JobRef, namespace: str | None = None) -> Job:
        """The Job as it is now."""
        return to_job(self._raw(job, namespace))

    def list(
        self,
        state: str | Sequence[str] | None = None,
        app: str | None = None,
        labels: Mapping[str, str] | None = None,
        last_n: int | None = None,
        *,
        all_namespaces: bool = False,
        namespace: str | None = None,
    ) -> builtins.list[Job]:
        """Jobs, newest first, filtered by state(s), App name and labels."""
        states = [state] if isinstance(state, str) else list(state or [])
        with translated():
            listed = self.kube.list_objects(
                "Job", None if all_namespaces else self._ns(namespace), query.selector(labels)
            )
        items = query.filter_jobs(listed.get("items") or [], states=states, app=app, last_n=last_n)
        return [to_job(o) for o in items]

    def apps(self, namespace: str | None = None) -> builtins.list[App]:
        with translated():
            items = self.kube.list_objects("App", self._ns(namespace)).get("items") or []
        return [App.model_validate(o) for o in sorted(items, key=lambda o: o["metadata"]["name"])]

    def timeline(self, job: JobRef, namespace: str | None = None) -> builtins.list[HistoryEntry]:
        """status.history: the states the Job went through, oldest first."""
        status = self.get(job, namespace).status
        return list(status.history) if status else []

    def events(self, job: JobRef, namespace: str | None = None) -> builtins.list[JobEvent]:
        """Events about the Job and its pods, oldest first."""
        name, ns = name_of(job), self._ns(namespace, job)
        with translated():
            items = self.kube.events(ns)
        return derive.job_events(items, name)

    # ---------------------------------------------------------------- submitting

    def submit(
        self,
        app: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        parents: Sequence[str] | None = None,
        resources: Mapping[str, Any] | None = None,
        max_run_seconds: int | None = None,
        retry: Mapping[str, Any] | None = None,
        archive: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        progress: bool | Progress = False,
    ) -> Job:
        """Create a Job of `app`. An input may be a source mapping (`{"s3": {...}}`), text
        (`s3://b/k`, `https://…`, `pvc://claim/path`, `configmap://name/key`, `@file`) or a
        local file or directory (a str or Path), which is uploaded to the store first."""
        ns = self._ns(namespace)
        job_name = name or query.generated_name(app)
        for key, value in (labels or {}).items():
            query.check_label(key, value)
        classified = {k: sources.classify(k, v) for k, v in (inputs or {}).items()}
        spec: dict[str, Any] = {"appRef": {"name": app}}
        if params:
            spec["parameters"] = dict(params)
        if parents:
            spec["parents"] = list(parents)
        for field, given in (("resources", resources), ("retry", retry), ("archive", archive)):
            if given is not None:
                spec[field] = dict(given)
        if max_run_seconds is not None:
            spec["maxRunSeconds"] = max_run_seconds
        spec["inputs"] = [
            {"name": k, "source": v} for k, v in classified.items() if isinstance(v, dict)
        ]
        self._validate(spec)
        local = [v for v in classified.values() if isinstance(v, sources.LocalInput)]
        base = ""
        if local:
            base = transfer.upload_base(self.settings, ns, job_name)
            with translated():
                uploaded = transfer.upload_inputs(
                    self.store, self.settings, ns, job_name, local, progress, base
                )
            spec["inputs"] += [{"name": k, "source": v} for k, v in uploaded.items()]
        if not spec["inputs"]:
            del spec["inputs"]
        metadata: dict[str, Any] = {"name": job_name}
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        try:
            return self._create(ns, {"metadata": metadata, "spec": spec})
        except FerryError:
            if base:  # no Job will read them: do not leave the uploads behind
                with contextlib.suppress(FerryError), translated():
                    self.store.remove_prefix(self.settings.bucket, base)
            raise

    @staticmethod
    def _validate(spec: dict[str, Any]) -> None:
        try:
            JobSpec.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise UsageError(f"spec.{where}: {first.get('msg')}") from None

    def _create(self, namespace: str, body: dict[str, Any]) -> Job:
        obj = {"apiVersion": API_VERSION, "kind": "Job", **body}
        with translated():
            created = self.kube.create("Job", namespace, obj)
        if self._tracked:
            self._tracked[-1].append((namespace, created["metadata"]["name"]))
        return to_job(created)

    def rerun(self, job: JobRef, *, name: str | None = None, namespace: str | None = None) -> Job:
        """A new Job with the same spec (and the user's labels), labelled
        `ferry.dev/rerun-of=<job>`."""
        old = self._raw(job, namespace)
        body = derive.rerun_body(old, name)
        return self._create(old["metadata"]["namespace"], body)

    # ---------------------------------------------------------------- changing

    def _patch(self, job: JobRef, namespace: str | None, spec: dict[str, Any]) -> Job:
        with translated():
            obj = self.kube.merge_patch(
                "Job", self._ns(namespace, job), name_of(job), {"spec": spec}
            )
        return to_job(obj)

    def cancel(self, job: JobRef, namespace: str | None = None) -> Job:
        """Ask the operator to end the Job as Cancelled (spec.cancel: true)."""
        return self._patch(job, namespace, {"cancel": True})

    def suspend(self, job: JobRef, namespace: str | None = None) -> Job:
        return self._patch(job, namespace, {"suspend": True})

    def resume(self, job: JobRef, namespace: str | None = None) -> Job:
        return self._patch(job, namespace, {"suspend": False})

    def extend(self, job: JobRef, seconds: int, namespace: str | None = None) -> Job:
        """Raise spec.maxRunSeconds by `seconds` (from the Job's limit, else its App's)."""
        if seconds <= 0:
            raise UsageError(f"extend by {seconds}s: must be > 0")
        obj = self._raw(job, namespace)
        current = to_job(obj)
        state = query.state_of(obj)
        if query.is_terminal(obj):
            raise RefusedError(f"Job {name_of(job)} already ended {state}: rerun it instead")
        limit = current.spec.max_run_seconds
        if limit is None:
            app = self._app_limit(obj)
            if app is None:
                raise RefusedError(f"Job {name_of(job)} has no time limit to extend")
            limit = app
        return self._patch(job, namespace, {"maxRunSeconds": min(MAX_RUN_SECONDS, limit + seconds)})

    def _app_limit(self, obj: dict[str, Any]) -> int | None:
        try:
            with translated():
                app = self.kube.get(
                    "App", obj["metadata"]["namespace"], obj["spec"]["appRef"]["name"]
                )
        except FerryError:
            return None
        value = (app.get("spec") or {}).get("maxRunSeconds")
        return int(value) if value is not None else None

    # ---------------------------------------------------------------- waiting

    def wait(
        self,
        job: JobRef,
        timeout: float | None = None,
        *,
        namespace: str | None = None,
        raise_on_failure: bool = False,
    ) -> Job:
        """Block until the Job ends (a watch, not polling); the terminal Job. WaitTimeoutError
        after `timeout` seconds; JobFailedError when it did not finish and raise_on_failure."""
        ns = self._ns(namespace, job)
        with translated():
            obj = watching.until(self.kube, ns, name_of(job), query.is_terminal, timeout)
        done = to_job(obj)
        if raise_on_failure:
            watching.raise_if_failed([obj])
        return done

    def watch_jobs(
        self,
        labels: Mapping[str, str] | None = None,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        name: str = "",
    ) -> Iterator[Job]:
        """Each new version of the Jobs selected, as it happens (until the caller stops)."""
        ns = None if all_namespaces else self._ns(namespace)
        with translated():
            for obj in watching.changes(self.kube, ns, query.selector(labels), name):
                yield to_job(obj)

    # ---------------------------------------------------------------- sync_context

    @contextmanager
    def sync_context(self) -> Iterator[builtins.list[tuple[str, str]]]:
        """Jobs submitted inside the block are cancelled if it exits by an exception or
        Ctrl+C; the list of (namespace, name) submitted is yielded."""
        submitted: builtins.list[tuple[str, str]] = []
        self._tracked.append(submitted)
        try:
            yield submitted
        except BaseException:
            for ns, name in submitted:
                try:
                    if not query.is_terminal(self._raw(name, ns)):
                        self.cancel(name, ns)
                except FerryError:
                    pass
            raise
        finally:
            self._tracked.remove(submitted)

    # ---------------------------------------------------------------- delegated

    def logs(
        self,
        job: JobRef,
        follow: bool = False,
        attempt: int | None = None,
        namespace: str | None = None,
    ) -> Iterator[str]:
        """The app's output line by line: the live container while it runs, the archived
        logs/app.log once the run pod is gone."""
        from ferry.sdk.logs import stream

        return stream(self, name_of(job), self._ns(namespace, job), follow, attempt)

    def outputs(
        self, job: JobRef, namespace: str | None = None, attempt: int | None = None
    ) -> Outputs:
        """The archive's manifest as a listing (path, bytes, sha256 of each file)."""
        obj = self._raw(job, namespace)
        with translated():
            return transfer.outputs(self.store, obj, attempt)

    def download(
        self,
        job: JobRef,
        dest: str | os.PathLike[str] = ".",
        files: Sequence[str] | str | None = None,
        *,
        progress: bool | Progress = False,
        namespace: str | None = None,
        attempt: int | None = None,
    ) -> transfer.DownloadResult:
        """Download the archived outputs matching `files` (globs; all by default) below
        `dest`, verifying each sha256 and resuming partial files."""
        patterns = [files] if isinstance(files, str) else list(files or [])
        outs = self.outputs(job, namespace, attempt)
        with translated():
            return transfer.download(self.store, outs, Path(dest), patterns, progress)

    def sweep(self, app: str, grid: Any, **kwargs: Any) -> Sweep:
        """N Jobs of `app`, one per parameter set (a grid mapping of lists, or a list of
        dicts), sharing the label ferry.dev/sweep; see ferry.sdk.sweep."""
        from ferry.sdk.sweep import submit_sweep

        return submit_sweep(self, app, grid, **kwargs)

    def get_sweep(self, sweep: str, namespace: str | None = None) -> Sweep:
        from ferry.sdk.sweep import Sweep

        return Sweep(self, sweep, self._ns(namespace))
