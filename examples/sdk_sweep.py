"""Sweep an App over a parameter grid from Python, wait for every Job, collect the results.

Run it where your kubeconfig reaches a cluster with Ferry and the `series` App
(examples/sdk/app.yaml), with the store for uploads and downloads in the environment:

    export FERRY_S3_ENDPOINT=http://127.0.0.1:9000 FERRY_S3_ACCESS_KEY=... FERRY_S3_SECRET_KEY=...
    python examples/sdk_sweep.py --namespace ferry-demo --dest sweep-results

The local directory examples/sdk/data is uploaded and staged as each Job's `data` input. If the
script is interrupted (Ctrl+C) or fails while waiting, sync_context cancels the sweep's Jobs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferry.sdk import Client

DATA = Path(__file__).resolve().parent / "sdk" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", "-n", help="default: the kubeconfig context's")
    parser.add_argument("--name", default=None, help="the sweep's name (default: generated)")
    parser.add_argument("--dest", default="sweep-results", help="where results go")
    args = parser.parse_args()

    ferry = Client(args.namespace)
    with ferry.sync_context():
        sweep = ferry.sweep(
            "series",
            {"terms": [10, 20, 30], "scale": [1, 2]},  # 6 Jobs: every combination
            inputs={"data": DATA},
            name=args.name,
            max_run_seconds=120,
        )
        print(f"submitted {sweep.summary()}")
        jobs = sweep.wait(timeout=600, raise_on_failure=True)
    print(f"ended {sweep.summary()}")

    results = sweep.download(args.dest, "results/total.txt")
    for job in sorted(jobs, key=lambda j: str(j.metadata["name"])):
        name = str(job.metadata["name"])
        p = job.spec.parameters
        total = (results[name].dest / "results" / "total.txt").read_text().strip()
        print(f"{name}: terms={p['terms']} scale={p['scale']} total={total}")


if __name__ == "__main__":
    main()
