"""The objects built for an attempt: names, ownership, labels, security, resources, templates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.api.job import JobSpec
from ferry.config import OperatorConfig
from ferry.decisions import builders
from ferry.decisions import run_pod as run_pod_template
from ferry.decisions.builders import JobMeta
from ferry.decisions.templating import TemplateError

from .factories import CONFIG, JOB, NS, UID, app_spec, job_spec, walk

pytestmark = pytest.mark.unit

META = JobMeta(JOB, NS, UID)
PARAMS = {"steps": 5}


def run_pod(spec: JobSpec | None = None, attempt: int = 1, **app: Any) -> dict[str, Any]:
    return run_pod_template.run_pod(
        META, app_spec(**app), spec or job_spec(), PARAMS, attempt, CONFIG
    )


def archive(spec: JobSpec | None = None, attempt: int = 1, try_: int = 1) -> dict[str, Any]:
    return builders.archive_pod(
        META, app_spec(), spec or job_spec(), attempt, try_, {"job": {"name": JOB}}, CONFIG
    )


def pvc(spec: JobSpec | None = None, attempt: int = 1, config: OperatorConfig = CONFIG) -> Any:
    return builders.workspace_pvc(META, spec or job_spec(), attempt, config)


ALL_SOURCES = job_spec(
    inputs=[
        {"name": "a", "source": {"inline": "text"}},
        {
            "name": "b",
            "source": {"s3": {"bucket": "models", "key": "k", "secretRef": {"name": "creds"}}},
        },
        {"name": "c", "source": {"http": {"url": "https://example.org/f", "sha256": "a" * 64}}},
        {"name": "d", "source": {"pvc": {"claimName": "data", "path": "x/y"}}},
        {"name": "e", "source": {"configMap": {"name": "cfg", "key": "f.txt"}}},
        {"name": "model", "source": {"s3": {"bucket": "models", "prefix": "p/"}}},
    ]
)
ARCHIVE_S3 = job_spec(
    archive={"s3": {"bucket": "results", "prefix": "bridge/", "secretRef": {"name": "res"}}}
)


def objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("run-pod", run_pod()),
        ("run-pod-all-sources", run_pod(ALL_SOURCES)),
        ("archive-pod", archive()),
        ("archive-pod-own-store", archive(ARCHIVE_S3)),
        ("pvc", pvc()),
    ]


def pods() -> list[tuple[str, dict[str, Any]]]:
    return [(n, o) for n, o in objects() if o["kind"] == "Pod"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


# --------------------------------------------------------------------------- names, ownership


@pytest.mark.parametrize(
    ("obj", "kind", "name"),
    [
        (lambda: run_pod(attempt=1), "Pod", f"{JOB}-1"),
        (lambda: run_pod(attempt=3), "Pod", f"{JOB}-3"),
        (lambda: archive(attempt=2, try_=1), "Pod", f"{JOB}-2-archive-1"),
        (lambda: archive(attempt=2, try_=3), "Pod", f"{JOB}-2-archive-3"),
        (lambda: pvc(attempt=4), "PersistentVolumeClaim", f"{JOB}-4"),
    ],
    ids=["run-1", "run-3", "archive-2-1", "archive-2-3", "pvc-4"],
)
def test_deterministic_names(obj: Any, kind: str, name: str) -> None:
    first, second = obj(), obj()
    assert first == second
    assert (first["kind"], first["metadata"]["name"]) == (kind, name)
    assert first["metadata"]["namespace"] == NS


@pytest.mark.parametrize(("name", "obj"), objects(), ids=[n for n, _ in objects()])
def test_owned_by_the_job_and_labelled(name: str, obj: dict[str, Any]) -> None:
    (owner,) = obj["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "name": JOB,
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = obj["metadata"]["labels"]
    assert labels["ferry.dev/job"] == JOB
    assert labels["ferry.dev/attempt"] == "1"
    assert labels["app.kubernetes.io/managed-by"] == "ferry"


def test_archive_pod_records_its_try() -> None:
    pod = archive(try_=2)
    assert pod["metadata"]["annotations"]["ferry.dev/archive-try"] == "2"
    assert pod["metadata"]["labels"]["ferry.dev/role"] == "archive"
    assert run_pod()["metadata"]["labels"]["ferry.dev/role"] == "run"


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize(("name", "pod"), pods(), ids=[n for n, _ in pods()])
def test_every_container_is_restricted(name: str, pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["restartPolicy"] == "Never"
    cs = containers(pod)
    assert cs
    for c in cs:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert "add" not in sc["capabilities"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert sc.get("privileged", False) is False


@pytest.mark.parametrize(("name", "obj"), objects(), ids=[n for n, _ in objects()])
def test_nothing_privileged_anywhere(name: str, obj: dict[str, Any]) -> None:
    forbidden = {"hostPath", "hostNetwork", "hostPID", "hostIPC", "hostPort"}
    for path, key, value in walk(obj):
        assert key not in forbidden, path
        if key == "privileged":
            assert value is False, path
        if key == "automountServiceAccountToken":
            assert value is False, path
        if key == "runAsUser":
            assert value != 0, path
        if key == "allowPrivilegeEscalation":
            assert value is False, path
    assert "serviceAccountName" not in obj.get("spec", {})


@pytest.mark.parametrize(("name", "pod"), pods(), ids=[n for n, _ in pods()])
def test_credentials_only_by_secret_key_ref(name: str, pod: dict[str, Any]) -> None:
    for c in containers(pod):
        for env in c.get("env", []):
            upper = env["name"].upper()
            if "KEY" in upper or "SECRET" in upper or "PASSWORD" in upper or "TOKEN" in upper:
                assert "value" not in env, (c["name"], env["name"])
                assert set(env["valueFrom"]) == {"secretKeyRef"}
    for vol in pod["spec"]["volumes"]:
        assert "secret" not in vol, vol["name"]  # no Secret is mounted either


def test_s3_credentials_name_the_right_secrets() -> None:
    pod = run_pod(ALL_SOURCES)
    by_name = {c["name"]: c for c in containers(pod)}
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in by_name["stage-b"]["env"]
        if "valueFrom" in e
    }
    assert refs == {
        "FERRY_S3_ACCESS_KEY": {"name": "creds", "key": "accessKey"},
        "FERRY_S3_SECRET_KEY": {"name": "creds", "key": "secretKey"},
    }
    default = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in by_name["stage-model"]["env"]
        if "valueFrom" in e
    }
    assert set(default.values()) == {CONFIG.default_s3_secret}
    archive_env = {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
        for e in archive(ARCHIVE_S3)["spec"]["containers"][0]["env"]
    }
    assert archive_env["FERRY_S3_ACCESS_KEY"] == "res"


def _credentials(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}


def _values(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in env if "value" in e}


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://169.254.169.254",
        "http://127.0.0.1:9000",
        "https://s3.attacker.example",
        "http://minio.ferry-system.svc:9001",  # the default store's host, another port
    ],
)
def test_no_credentials_for_an_endpoint_that_is_not_a_trusted_store(endpoint: str) -> None:
    """Neither a secretRef's nor the default Secret's keys reach a container whose endpoint
    the operator does not trust: its requests are anonymous."""
    for secret_ref in ({"name": "creds"}, None):
        s3: dict[str, Any] = {"bucket": "models", "key": "k", "endpoint": endpoint}
        if secret_ref:
            s3["secretRef"] = secret_ref
        pod = run_pod(job_spec(inputs=[{"name": "m", "source": {"s3": s3}}]))
        env = next(c for c in containers(pod) if c["name"] == "stage-m")["env"]
        assert _credentials(env) == {}
        assert _values(env)["FERRY_S3_ENDPOINT"] == endpoint
        assert _values(env)["FERRY_ALLOWED_STORE_ENDPOINTS"] == CONFIG.default_s3_endpoint
        store = {k: v for k, v in s3.items() if k != "key"}
        env = archive(job_spec(archive={"s3": store}))["spec"]["containers"][0]["env"]
        assert _credentials(env) == {}


def test_credentials_with_fixed_keys_for_an_allow_listed_store() -> None:
    config = CONFIG.model_copy(update={"allowed_store_endpoints": ("http://minio.data.svc:9000",)})
    spec = job_spec(
        inputs=[
            {
                "name": "m",
                "source": {
                    "s3": {
                        "bucket": "models",
                        "key": "k",
                        "endpoint": "http://MINIO.data.svc:9000/",
                        "secretRef": {"name": "creds", "accessKeyKey": "accessKey"},
                    }
                },
            }
        ]
    )
    pod = run_pod_template.run_pod(META, app_spec(), spec, PARAMS, 1, config)
    env = next(c for c in containers(pod) if c["name"] == "stage-m")["env"]
    assert _credentials(env) == {
        "FERRY_S3_ACCESS_KEY": {"name": "creds", "key": "accessKey"},
        "FERRY_S3_SECRET_KEY": {"name": "creds", "key": "secretKey"},
    }
    assert _values(env)["FERRY_ALLOWED_STORE_ENDPOINTS"] == (
        f"{CONFIG.default_s3_endpoint},http://minio.data.svc:9000"
    )


# --------------------------------------------------------------------------- run pod content


def test_one_stager_per_input_after_setup() -> None:
    pod = run_pod(ALL_SOURCES)
    names = [c["name"] for c in pod["spec"]["initContainers"]]
    assert names == [
        "ferry-setup",
        "stage-a",
        "stage-b",
        "stage-c",
        "stage-d",
        "stage-e",
        "stage-model",
    ]
    for c in pod["spec"]["initContainers"][1:]:
        assert c["image"] == CONFIG.tools_image
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/ferry/inputs"]["subPath"] == "inputs"


def test_pvc_and_config_map_sources_are_mounted_read_only() -> None:
    pod = run_pod(ALL_SOURCES)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["in-d"]["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}
    assert volumes["in-e"]["configMap"]["name"] == "cfg"
    assert volumes["workspace"]["persistentVolumeClaim"]["claimName"] == f"{JOB}-1"
    stage_d = next(c for c in pod["spec"]["initContainers"] if c["name"] == "stage-d")
    source_mount = next(m for m in stage_d["volumeMounts"] if m["name"] == "in-d")
    assert source_mount["readOnly"] is True


def test_stager_gets_the_input_description() -> None:
    pod = run_pod(ALL_SOURCES)
    stage_c = next(c for c in pod["spec"]["initContainers"] if c["name"] == "stage-c")
    env = {e["name"]: e.get("value") for e in stage_c["env"]}
    item = json.loads(env["FERRY_INPUT"] or "")
    assert item["name"] == "c"
    assert item["source"]["http"]["sha256"] == "a" * 64


def test_templates_are_rendered_into_command_args_and_env() -> None:
    pod = run_pod(
        command=["solve", "--job={{job.name}}"],
        args=["{{inputs.model}}", "--steps", "{{params.steps}}", "--try={{job.attempt}}"],
        env=[
            {"name": "OUT", "value": "{{workdir}}/out"},
            {"name": "NS", "value": "{{job.namespace}}"},
        ],
        attempt=2,
    )
    (app,) = pod["spec"]["containers"]
    assert app["name"] == "app"
    assert app["image"] == "registry.example.org/solver:1.0"
    assert app["workingDir"] == "/ferry/work"
    assert app["args"] == ["/ferry/inputs/model", "--steps", "5", "--try=2"]
    assert app["command"][-2:] == ["solve", f"--job={JOB}"]
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env["OUT"] == "/ferry/work/out"
    assert env["NS"] == NS
    assert env["FERRY_ATTEMPT"] == "2"
    assert "{{" not in json.dumps(app)


def test_no_command_keeps_the_image_entrypoint() -> None:
    pod = run_pod(command=None)
    (app,) = pod["spec"]["containers"]
    assert "command" not in app
    assert app["args"] == ["/ferry/inputs/model", "--steps", "5"]


def test_bad_template_raises_template_error() -> None:
    with pytest.raises(TemplateError, match="ghost"):
        run_pod(args=["{{params.ghost}}"])


def test_inputs_are_mounted_read_only_into_the_app() -> None:
    (app,) = run_pod()["spec"]["containers"]
    inputs = next(m for m in app["volumeMounts"] if m["mountPath"] == "/ferry/inputs")
    assert inputs["readOnly"] is True
    work = next(m for m in app["volumeMounts"] if m["mountPath"] == "/ferry/work")
    assert work["subPath"] == "work"


# --------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("app_res", "job_res", "requests", "limits"),
    [
        ({"cpu": "2", "memory": "4Gi"}, None, {"cpu": "2", "memory": "4Gi"}, {"memory": "4Gi"}),
        (
            {"cpu": "2", "memory": "4Gi", "gpu": 0},
            {"cpu": "4", "memory": "8Gi", "gpu": 1},
            {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
            {"memory": "8Gi", "nvidia.com/gpu": "1"},
        ),
        (
            {"cpu": "2", "memory": "4Gi", "gpu": 2},
            {"cpu": "500m"},
            {"cpu": "500m", "memory": "4Gi", "nvidia.com/gpu": "2"},
            {"memory": "4Gi", "nvidia.com/gpu": "2"},
        ),
        (
            {"gpu": 2},
            {"gpu": 0},
            None,
            None,
        ),
        ({}, None, None, None),
    ],
    ids=["app-only", "job-overrides-all", "job-overrides-cpu", "job-zero-gpu", "none"],
)
def test_resources_job_over_app(
    app_res: dict[str, Any], job_res: dict[str, Any] | None, requests: Any, limits: Any
) -> None:
    spec = job_spec(resources=job_res) if job_res is not None else job_spec()
    (app,) = run_pod(spec, resources=app_res)["spec"]["containers"]
    assert app["resources"].get("requests") == requests
    assert app["resources"].get("limits") == limits


# --------------------------------------------------------------------------- workspace, archive


def test_workspace_pvc_size_and_storage_class() -> None:
    default = pvc()
    assert default["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in default["spec"]
    own = pvc(job_spec(workspace={"size": "5Gi", "storageClassName": "fast"}))
    assert own["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert own["spec"]["storageClassName"] == "fast"
    configured = pvc(config=OperatorConfig(storage_class_name="standard"))
    assert configured["spec"]["storageClassName"] == "standard"


@pytest.mark.parametrize(
    ("archive_spec", "expected"),
    [
        (None, f"s3://ferry/{NS}/{JOB}/{UID}/attempt-2/"),
        ({"s3": {"bucket": "results"}}, f"s3://results/{NS}/{JOB}/{UID}/attempt-2/"),
        (
            {"s3": {"bucket": "results", "prefix": "bridge/"}},
            f"s3://results/bridge/{NS}/{JOB}/{UID}/attempt-2/",
        ),
        (
            {"s3": {"bucket": "results", "prefix": "bridge"}},
            f"s3://results/bridge/{NS}/{JOB}/{UID}/attempt-2/",
        ),
        ({"prefix": "p/q/"}, f"s3://ferry/p/q/{NS}/{JOB}/{UID}/attempt-2/"),
    ],
    ids=["default-store", "bucket", "s3-prefix", "prefix-gets-slash", "archive-prefix"],
)
def test_archive_destination_layout(archive_spec: Any, expected: str) -> None:
    spec = job_spec(archive=archive_spec) if archive_spec else job_spec()
    assert builders.archive_destination(META, spec, 2, CONFIG) == expected


def test_archive_pod_plan() -> None:
    spec = job_spec(
        archive={"s3": {"bucket": "results", "prefix": "bridge/"}, "include": ["*.out"]}
    )
    pod = archive(spec, attempt=2, try_=1)
    (c,) = pod["spec"]["containers"]
    assert c["name"] == "archive"
    env = {e["name"]: e.get("value") for e in c["env"]}
    plan = json.loads(env["FERRY_ARCHIVE"] or "")
    assert plan["destination"] == f"s3://results/bridge/{NS}/{JOB}/{UID}/attempt-2/"
    assert plan["include"] == ["*.out"]
    assert plan["exclude"] == []
    assert plan["extra"] == {"job": {"name": JOB}}
    (vol,) = pod["spec"]["volumes"]
    assert vol["persistentVolumeClaim"] == {"claimName": f"{JOB}-2", "readOnly": True}


def test_archive_defaults_to_the_app_outputs() -> None:
    app = app_spec(outputs={"include": ["results/**"], "exclude": ["tmp/**"]})
    pod = builders.archive_pod(META, app, job_spec(), 1, 1, {}, CONFIG)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    plan = json.loads(env["FERRY_ARCHIVE"] or "")
    assert (plan["include"], plan["exclude"]) == (["results/**"], ["tmp/**"])
