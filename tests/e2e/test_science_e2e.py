"""The science examples end to end on the real node: Debian's LAMMPS and CalculiX run as Ferry
Apps by the real operator, inputs staged from MinIO and from an HTTP server on the pod bridge,
outputs archived to MinIO and read back through the manifest (sizes and sha256), and a
physical result checked in what was archived.

- examples/lammps-melt: `lj-melt-s3` (in.melt from S3) and `lj-melt-http` (from HTTP, sha256
  pinned) melt an 864-atom Lennard-Jones fcc crystal at T* = 1.5 with different seeds: the
  lattice energy at step 0 is the fcc lattice sum, the thermostat holds the target
  temperature, the atoms diffuse (a liquid), and the two runs agree on the pressure.
- examples/lammps_sweep.py: the SDK sweeps lj-melt over T* = 1.0 ... 2.5; every point
  finishes and the pressure and potential energy rise with the temperature.
- examples/calculix-beam: `beam-1` (beam.inp from S3) deflects a C3D20R cantilever; the tip
  deflection matches Euler-Bernoulli's P L^3 / (3 E I) and the support carries the load.

Every Job is submitted at once by the module's fixture (one namespace, run concurrently);
each test waits for its own. The images are built (or reused by their inputs' hash) and
imported by the `lammps_image` and `calculix_image` fixtures.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrydev.cluster import POD_GATEWAY
from tests.conftest import ROOT, Kube
from tests.e2e.conftest import DEFAULT_BUCKET, RealNodeOperator
from tests.e2e.test_ferry_e2e import assert_admitted, store, verified_archive, wait_state

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
MELT = EXAMPLES / "lammps-melt"
BEAM = EXAMPLES / "calculix-beam"
SWEEP_TEMPERATURES = [1.0, 1.5, 2.0, 2.5]
#: The potential energy per atom of the perfect fcc lattice at density 0.8442, LJ cut at 2.5.
FCC_LATTICE_PE = -6.7733681


@dataclass
class Science:
    kube: Kube
    namespace: str
    op: RealNodeOperator
    sweep: subprocess.Popen[str]
    sweep_dir: Path
    http_requests: list[str]


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves examples/lammps-melt's files; records the paths asked for."""

    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        path = MELT / self.path.lstrip("/")
        if self.path.count("/") != 1 or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _namespace(kube: Kube) -> str:
    """A restricted-PSS namespace with the default store's Secret (as `ferry_namespace`)."""
    name = f"sci-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    kube.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    state = kube.state
    kube.run(
        "create", "secret", "generic", "ferry-s3", "-n", name,
        f"--from-literal=accessKey={state.minio_access_key}",
        f"--from-literal=secretKey={state.minio_secret_key}",
    )  # fmt: skip
    kube.wait_for(
        lambda: kube.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"default ServiceAccount in {name}",
    )
    return name


def _user_env(kube: Kube, namespace: str, tmp: Path) -> dict[str, str]:
    """The environment of a user running examples/lammps_sweep.py against this namespace."""
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    for ctx in config["contexts"]:
        if ctx["name"] == config["current-context"]:
            ctx["context"]["namespace"] = namespace
    (tmp / "kubeconfig").write_text(yaml.safe_dump(config))
    state = kube.state
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "AWS_"))}
    env.update(
        KUBECONFIG=str(tmp / "kubeconfig"),
        FERRY_S3_ENDPOINT=state.minio_endpoint,
        FERRY_S3_ACCESS_KEY=state.minio_access_key,
        FERRY_S3_SECRET_KEY=state.minio_secret_key,
        FERRY_S3_BUCKET=DEFAULT_BUCKET,
        PYTHONPATH=os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")]),
    )
    return env


@pytest.fixture(scope="module")
def science(
    ferry_kube: Kube,
    _real_operator_process: RealNodeOperator,
    lammps_image: str,
    calculix_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Science]:
    """Every science Job submitted at once: the inputs in MinIO and on an HTTP server on the
    pod bridge, both examples' Apps and Jobs applied, and the SDK sweep started."""
    kube, op = ferry_kube, _real_operator_process
    op.start()
    ns = _namespace(kube)
    s3 = store(kube.state)
    s3.put_bytes(DEFAULT_BUCKET, "examples/lammps-melt/in.melt", (MELT / "in.melt").read_bytes())
    s3.put_bytes(
        DEFAULT_BUCKET, "examples/calculix-beam/beam.inp", (BEAM / "beam.inp").read_bytes()
    )
    requests: list[str] = []
    server = http.server.ThreadingHTTPServer(
        (POD_GATEWAY, 0), type("Files", (_Files,), {"requests": requests})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The examples as written, but for the HTTP server's port (the example says 8808).
    melt_jobs = (MELT / "job.yaml").read_text()
    assert "http://10.88.0.1:8808/in.melt" in melt_jobs
    melt_jobs = melt_jobs.replace(":8808/", f":{server.server_address[1]}/")
    kube.run("apply", "-n", ns, "-f", str(MELT / "app.yaml"), "-f", str(BEAM / "app.yaml"))
    kube.run("apply", "-n", ns, "-f", "-", stdin=melt_jobs)
    kube.run("apply", "-n", ns, "-f", str(BEAM / "job.yaml"))
    tmp = tmp_path_factory.mktemp("science")
    sweep = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "lammps_sweep.py"), "--name", "melt", "--dest", "out"],
        cwd=tmp, env=_user_env(kube, ns, tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield Science(kube, ns, op, sweep, tmp / "out", requests)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
        server.shutdown()
        server.server_close()
        kube.run("delete", "namespace", ns, "--wait=false", check=False)


def finished(sci: Science, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, bytes]]:
    """Wait for the Job to finish; the Job, its verified manifest and the archived files."""
    job = wait_state(sci.kube, sci.namespace, name, {"Finished"}, sci.op, timeout=300)
    manifest, content = verified_archive(sci.kube, job)
    return job, manifest, content


# --------------------------------------------------------------------------- LAMMPS


def test_lammps_melt_from_s3_and_http_reaches_the_liquid_at_the_target_temperature(
    science: Science,
) -> None:
    script = (MELT / "in.melt").read_bytes()
    results = {}
    for name, seed in (("lj-melt-s3", 87287), ("lj-melt-http", 4928459)):
        job, manifest, content = finished(science, name)
        assert {e["path"] for e in manifest["files"]} == {
            "log.lammps", "thermo.dat", "results.json",
        }  # fmt: skip
        assert manifest["parameters"] == {"temperature": 1.5, "seed": seed, "steps": 1000}
        (record,) = manifest["inputs"]
        assert hashlib.sha256(script).hexdigest() in json.dumps(record)
        log = content["log.lammps"].decode()
        assert "Created 864 atoms" in log, log
        assert log.count("Loop time of") == 3, log  # run 0, equilibration, production
        # thermo.dat: block averages, one row every 100 steps of the production run.
        rows = [ln.split() for ln in content["thermo.dat"].decode().splitlines()]
        assert [int(r[0]) for r in rows if not r[0].startswith("#")] == list(range(100, 1001, 100))
        r = json.loads(content["results.json"])
        print(f"{name}: {r}")
        assert (r["atoms"], r["steps"]) == (864, 1000)
        assert r["lattice_pe"] == pytest.approx(FCC_LATTICE_PE, abs=1e-6)
        assert r["temperature"] == pytest.approx(1.5, rel=0.05)  # the thermostat holds T*
        assert r["msd"] > 0.3  # diffusing: a liquid (the crystal's atoms stay below ~0.05)
        assert r["pe"] > FCC_LATTICE_PE + 1.0  # melting raised the potential energy
        assert job["status"]["outputs"]["files"] == 4  # with logs/app.log
        assert "Total wall time" in content["logs/app.log"].decode()
        results[name] = r
    # The same state point from two independent starts: the same pressure, within noise
    # (the block averages of one run scatter by ~0.2; the runs' means by ~0.1).
    assert results["lj-melt-s3"]["pressure"] == pytest.approx(
        results["lj-melt-http"]["pressure"], abs=0.4
    )
    assert "/in.melt" in science.http_requests  # staged from this server, by the pod
    assert_admitted(science.kube, science.namespace, science.op)


SWEEP_LINE = re.compile(r"(melt-\d{3}): T\*=(\S+) T=(\S+) P=(\S+) pe=(\S+) msd=(\S+)")


def test_lammps_sweep_pressure_and_energy_rise_with_temperature(science: Science) -> None:
    out, err = science.sweep.communicate(timeout=600)
    print(out, err, sep="\n")
    assert science.sweep.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("submitted sweep melt: 4 Jobs"), out
    assert lines[1] == "ended sweep melt: 4 Jobs: 4 Finished", out
    points = [SWEEP_LINE.fullmatch(line) for line in lines[2:6]]
    assert all(points), out
    table = [tuple(float(m.group(i)) for i in range(2, 7)) for m in points if m]
    assert [t[0] for t in table] == SWEEP_TEMPERATURES
    for target, temp, _p, _pe, msd in table:
        assert temp == pytest.approx(target, rel=0.05)
        assert msd > 0.1
    pressures, energies = [t[2] for t in table], [t[3] for t in table]
    assert all(a < b for a, b in itertools.pairwise(pressures)), table
    assert all(a < b for a, b in itertools.pairwise(energies)), table
    assert lines[6] == "pressure rises with temperature: yes", out
    for i in range(1, 5):
        assert (science.sweep_dir / f"melt-{i:03d}" / "results.json").is_file()
    # The archive of each point is whole and verified (sizes, sha256).
    for job in science.kube.list("fjob", science.namespace, "-l", "ferry.dev/sweep=melt"):
        _manifest, content = verified_archive(science.kube, job)
        assert json.loads(content["results.json"])["steps"] == 500


# --------------------------------------------------------------------------- CalculiX


def tip_deflection(dat: str) -> tuple[float, int]:
    """The mean y displacement of the TIP set's nodes in a ccx .dat file, and their count."""
    block = dat.split("displacements (vx,vy,vz) for set TIP", 1)[1].split("\n\n", 2)[1]
    uy = [float(line.split()[2]) for line in block.strip().splitlines()]
    return sum(uy) / len(uy), len(uy)


def tip_nodes(dat: str) -> list[int]:
    block = dat.split("displacements (vx,vy,vz) for set TIP", 1)[1].split("\n\n", 2)[1]
    return [int(line.split()[0]) for line in block.strip().splitlines()]


def deck_nodes(inp: str) -> int:
    """How many nodes a deck's *NODE block defines."""
    block = inp.split("*NODE", 1)[1].split("\n*", 1)[0]
    return len(block.strip().splitlines()) - 1  # the keyword line's tail


def frd_displacements(frd: str) -> dict[int, tuple[float, float, float]]:
    """node -> (ux, uy, uz) from the DISP block of a ccx .frd file (fixed columns: ` -1`,
    the node number in 10, then 12 a value)."""
    block = frd.split(" -4  DISP", 1)[1].split(" -3", 1)[0]
    out = {}
    for line in block.splitlines():
        if line.startswith(" -1"):
            node, rest = int(line[3:13]), line[13:]
            out[node] = (float(rest[0:12]), float(rest[12:24]), float(rest[24:36]))
    return out


def support_force(dat: str) -> list[float]:
    """The total reaction force (fx, fy, fz) on the FIXED set in a ccx .dat file."""
    block = dat.split("total force (fx,fy,fz) for set FIXED", 1)[1].split("\n\n", 2)[1]
    return [float(x) for x in block.strip().splitlines()[0].split()]


def test_calculix_cantilever_tip_deflection_matches_euler_bernoulli(science: Science) -> None:
    sys.path.insert(0, str(BEAM))
    try:
        import make_beam
    finally:
        sys.path.remove(str(BEAM))
    job, manifest, content = finished(science, "beam-1")
    paths = {e["path"] for e in manifest["files"]}
    assert {"beam.dat", "beam.frd", "beam.sta"} <= paths, paths
    dat = content["beam.dat"].decode()
    uy, nodes = tip_deflection(dat)
    analytic = make_beam.analytic_tip_deflection()
    error = abs(-uy - analytic) / analytic
    print(f"tip deflection {-uy:.4f} mm vs Euler-Bernoulli {analytic:.4f} mm: {error:.2%}")
    assert nodes == 21  # the tip face's nodes of a 2 x 2 C3D20R mesh
    assert uy < 0
    assert error < 0.05
    assert support_force(dat) == pytest.approx([0.0, make_beam.P, 0.0], abs=1e-6 * make_beam.P)
    # The .frd (the field file for cgx or ParaView) holds the same displacements.
    frd = frd_displacements(content["beam.frd"].decode())
    assert len(frd) == deck_nodes((BEAM / "beam.inp").read_text())
    tip_uy = [frd[n][1] for n in tip_nodes(dat)]
    assert sum(tip_uy) / len(tip_uy) == pytest.approx(uy, rel=1e-4)
    assert " -4  STRESS" in content["beam.frd"].decode()
    assert "SUMMARY OF JOB INFORMATION" in content["beam.sta"].decode()
    log = content["logs/app.log"].decode()
    assert "Job finished" in log, log
    assert job["status"]["exitCode"] == 0
