"""The lifecycle benchmark's plot: Jobs terminal over time, per system and round.

Owns: drawing the cumulative completions of every burst (Ferry blue, the Job controller
orange) to a PNG with matplotlib's Agg backend (imported only when a plot is drawn).

Must not: compute figures, or write anything but the PNG it is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferrydev.bench.results import BurstResult


def plot(bursts: list[BurstResult], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colors = {"ferry": "tab:blue", "batch": "tab:orange"}
    labels = {"ferry": "Ferry operator", "batch": "batch/v1 Job controller"}
    seen: set[str] = set()
    for b in bursts:
        xs = [0.0, *b.completions]
        ys = list(range(len(xs)))
        label = labels[b.system] if b.system not in seen else None
        seen.add(b.system)
        ax.step(xs, ys, where="post", color=colors[b.system], alpha=0.85, lw=1.4, label=label)
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("Jobs terminal (cumulative)")
    shape = f"{args.rate:g} Jobs/s" if args.rate else "at once"
    ax.set_title(f"{args.jobs} Jobs {shape}, client QPS {args.qps:g}, {args.rounds} round(s) each")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
