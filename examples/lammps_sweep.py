"""Sweep the LAMMPS Lennard-Jones melt (lammps-melt/) over temperature, then read the
equation of state off the archived results: the pressure and the potential energy per atom
must rise with the temperature at fixed density.

Run it where your kubeconfig reaches a cluster with Ferry and the `lj-melt` App
(examples/lammps-melt/app.yaml), with the store for uploads and downloads in the environment:

    export FERRY_S3_ENDPOINT=http://127.0.0.1:9000 FERRY_S3_ACCESS_KEY=... FERRY_S3_SECRET_KEY=...
    python examples/lammps_sweep.py --namespace ferry-demo --dest melt-results

The local script lammps-melt/in.melt is uploaded and staged as each Job's `script` input;
each Job's results.json is downloaded (sha256-verified) and printed as one line.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from ferry.sdk import Client

SCRIPT = Path(__file__).resolve().parent / "lammps-melt" / "in.melt"
TEMPERATURES = [1.0, 1.5, 2.0, 2.5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", "-n", help="default: the kubeconfig context's")
    parser.add_argument("--name", default=None, help="the sweep's name (default: generated)")
    parser.add_argument("--dest", default="melt-results", help="where results go")
    parser.add_argument("--steps", type=int, default=500, help="equilibration (= sampling) steps")
    args = parser.parse_args()

    ferry = Client(args.namespace)
    with ferry.sync_context():
        sweep = ferry.sweep(
            "lj-melt",
            {"temperature": TEMPERATURES},
            params={"steps": args.steps},
            inputs={"script": SCRIPT},
            name=args.name,
            max_run_seconds=300,
        )
        print(f"submitted {sweep.summary()}")
        jobs = sweep.wait(timeout=900, raise_on_failure=True)
    print(f"ended {sweep.summary()}")

    downloaded = sweep.download(args.dest, "results.json")
    rows = []
    for job in jobs:
        name = str(job.metadata["name"])
        result = json.loads((downloaded[name].dest / "results.json").read_text())
        rows.append((result["target_temperature"], name, result))
    for target, name, r in sorted(rows):
        print(
            f"{name}: T*={target:g} T={r['temperature']:.3f} P={r['pressure']:.3f} "
            f"pe={r['pe']:.3f} msd={r['msd']:.3f}"
        )
    pressures = [r["pressure"] for _, _, r in sorted(rows)]
    rising = all(a < b for a, b in itertools.pairwise(pressures))
    print(f"pressure rises with temperature: {'yes' if rising else 'NO'}")


if __name__ == "__main__":
    main()
