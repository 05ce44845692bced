"""The benchmarks' reports: Markdown tables and the blocks they own in docs/benchmarks.md.

Owns: the lifecycle report (per-round and median tables, the Ferry/baseline ratios, the
writes by component, the population table, the goals) and replacing its block between its
markers; the staging section (its table and notes) and replacing it under its heading; the
commit a run measured (`git_meta`).

Must not: measure anything, or change any part of docs/benchmarks.md but the block or
section of the workload it writes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferrydev.bench.results import BurstResult, fmt, ratio
from ferrydev.paths import ROOT

if TYPE_CHECKING:
    from ferrydev.bench.staging import Row

BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
STAGING_HEADING = "## Staging throughput"


def results_markers(stream: bool) -> tuple[str, str]:
    """The markers around the results block this workload writes into docs/benchmarks.md."""
    name = "lifecycle-stream-results" if stream else "lifecycle-results"
    return (
        f"<!-- {name}:begin (written by bench/lifecycle.py --update-docs) -->",
        f"<!-- {name}:end -->",
    )


def markdown(
    args: argparse.Namespace,
    bursts: list[BurstResult],
    summary: dict[str, dict[str, float | None]],
    pop: dict[str, Any] | None,
    goal_lines: list[str],
    meta: dict[str, Any],
) -> str:
    out: list[str] = []
    out.append(
        f"Measured {meta['date']} on commit `{meta['commit']}`{meta['dirty']} (operator "
        f"sources sha256 `{meta['operator_digest']}`), {meta['cpus']} CPUs "
        f"(shared with other work), `--jobs {args.jobs} --rounds {args.rounds} --qps {args.qps:g}"
        f"{f' --rate {args.rate:g}' if args.rate else ''}"
        f"{f' --workers {args.workers}' if args.workers else ''}"
        f"{''.join(f' --operator-setting {x}' for x in getattr(args, 'operator_setting', []))}"
        "`, kwok run time "
        f"{args.duration}; Ferry Jobs' archive setting: `{meta['archive']}`."
        + (
            f" Writes counted again on {meta['recounted']} from every audit log file "
            "(`--recount`).\n"
            if meta.get("recounted")
            else "\n"
        )
    )
    out.append(
        "| round | system | all terminal (s) | completions/s | create→pod p50 / p99 (s) "
        "| pod terminal→Job terminal p50 / p99 (s) | writes/Job (all) | writes/Job (controller) "
        "| operator CPU (s) | operator peak RSS (MB) | kube-controller-manager CPU (s) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bursts:
        out.append(
            f"| {b.round} | {b.system} | {fmt(b.seconds_to_all_terminal, 1)} "
            f"| {fmt(b.completions_per_second)} "
            f"| {fmt(b.p50_create_to_pod)} / {fmt(b.p99_create_to_pod)} "
            f"| {fmt(b.p50_pod_to_job, 3)} / {fmt(b.p99_pod_to_job, 3)} "
            f"| {b.writes_per_job:.2f} | {b.controller_writes_per_job:.2f} "
            f"| {fmt(b.operator_cpu_seconds, 1)} "
            f"| {fmt(b.operator_peak_rss_bytes / 1e6 if b.operator_peak_rss_bytes else None, 0)} "
            f"| {fmt(b.controller_manager_cpu_seconds, 1)} |"
        )
    for system, s in summary.items():
        out.append(
            f"| median | {system} | {fmt(s['seconds_to_all_terminal'], 1)} "
            f"| {fmt(s['completions_per_second'])} "
            f"| {fmt(s['p50_create_to_pod'])} / {fmt(s['p99_create_to_pod'])} "
            f"| {fmt(s['p50_pod_to_job'], 3)} / {fmt(s['p99_pod_to_job'], 3)} "
            f"| {fmt(s['writes_per_job'])} | {fmt(s['controller_writes_per_job'])} "
            f"| {fmt(s['operator_cpu_seconds'], 1)} | {fmt(s['operator_peak_rss_mb'], 0)} "
            f"| {fmt(s['controller_manager_cpu_seconds'], 1)} |"
        )
    drains = [
        f"round {b.round}: {fmt(b.events_drained_after, 1)} s"
        for b in bursts
        if b.system == "ferry" and b.events_drained_after is not None
    ]
    if drains:
        out.append(
            "\nThe operator posts Events after each pass; the last were posted this long after "
            "the last Job was terminal, and its writes and CPU are counted until then: "
            + ", ".join(drains)
            + "."
        )
    ferry_sum, batch_sum = summary.get("ferry", {}), summary.get("batch", {})
    out.append("")
    out.append("Ferry / baseline (medians):\n")
    for label, key in (
        ("completions/s", "completions_per_second"),
        ("time to all terminal", "seconds_to_all_terminal"),
        ("p99 create→pod", "p99_create_to_pod"),
        ("p99 pod terminal→Job terminal", "p99_pod_to_job"),
        ("writes/Job, all components", "writes_per_job"),
        ("writes/Job, the controller's own", "controller_writes_per_job"),
        ("controller CPU seconds (operator / kube-controller-manager)", None),
    ):
        if key is None:
            value = ratio(
                ferry_sum.get("operator_cpu_seconds"),
                batch_sum.get("controller_manager_cpu_seconds"),
            )
        else:
            value = ratio(ferry_sum.get(key), batch_sum.get(key))
        out.append(f"- {label}: {fmt(value)}")
    tr = ratio(ferry_sum.get("completions_per_second"), batch_sum.get("completions_per_second"))
    out.append(f"\n**throughput ratio: {fmt(tr)}**\n")
    # Writes of the median-ish (last) round per system, by component, verb and resource.
    for system in ("ferry", "batch"):
        rs = [x for x in bursts if x.system == system]
        if not rs:
            continue
        last = rs[-1]
        out.append(
            f"API writes per Job, {system}, round {last.round} (audit log; by component, "
            f"user, verb, resource):\n"
        )
        out.append("| component | user | verb | resource | count | of which failed | per Job |")
        out.append("|---|---|---|---|---|---|---|")
        for row in last.writes:
            out.append(
                f"| {row['actor']} | {row['user']} | {row['verb']} | {row['resource']} "
                f"| {row['count']} | {row.get('failed', 0)} | {row['count'] / last.jobs:.2f} |"
            )
        out.append("")
        if last.operator_requests:
            reqs = ", ".join(
                f"{k} {v / last.jobs:.2f}" for k, v in sorted(last.operator_requests.items())
            )
            total = sum(last.operator_requests.values()) / last.jobs
            out.append(
                f"The operator's own count of its requests in that round "
                f"(`ferry_api_requests_total`, reads included, per Job): {reqs}; "
                f"total {total:.2f}.\n"
            )
    if pop:
        out.append(
            f"Population ({pop['jobs']} finished Ferry Jobs, status from {pop['status_from']}):\n"
        )
        out.append(
            "| operator start → all Finished Jobs known (s) | new Job create → Finished (s) "
            "| start → new Job Finished (s) | RSS settled (MB) | peak RSS (MB) "
            "| CPU (s) | operator writes |"
        )
        out.append("|---|---|---|---|---|---|---|")
        writes = ", ".join(f"{k}: {v}" for k, v in pop["operator_writes"].items()) or "none"
        out.append(
            f"| {pop['seconds_to_resume']:.1f} | {pop['seconds_probe_create_to_finished']:.2f} "
            f"| {pop['seconds_start_to_probe_finished']:.1f} "
            f"| {pop['rss_bytes_settled'] / 1e6:.0f} "
            f"| {pop['peak_rss_bytes'] / 1e6:.0f} | {pop['cpu_seconds']:.1f} | {writes} |"
        )
        out.append("")
    out.append("Goals:\n")
    out.extend(f"- {g}" for g in goal_lines)
    out.append("")
    if args.plot:
        out.append(f"![Completions over time]({Path(args.plot).name})")
    return "\n".join(out) + "\n"


def update_docs(path: Path, text: str, stream: bool) -> None:
    """Replace this workload's results block between its markers (appending a section if
    absent), leaving the rest of the file (other workloads' and benchmarks' sections) as is."""
    begin, end = results_markers(stream)
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        title = "Lifecycle results, steady stream" if stream else "Lifecycle results"
        new = current.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    path.write_text(new)


def git_meta() -> dict[str, str]:
    def git(*a: str) -> str:
        proc = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--", "operator")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": " with uncommitted changes under operator/" if dirty else "",
        "operator_changes": " ".join(line.split(maxsplit=1)[-1] for line in dirty.splitlines()),
    }


def staging_table(rows: list[Row], rounds: int) -> str:
    lines = [
        "| data | direction | stager MB/s | baseline MB/s | ratio stager/baseline "
        "| client CPU s, stager / baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = statistics.median(row.stager)
        b = statistics.median(row.baseline)
        cpu = (
            f"{statistics.median(row.stager_cpu):.2f} / {statistics.median(row.baseline_cpu):.2f}"
            if row.stager_cpu and row.baseline_cpu
            else "n/a"
        )
        lines.append(
            f"| {row.data} | {row.direction} | {s:.1f} | {b:.1f} | **{s / b:.2f}** | {cpu} |"
        )
    return "\n".join(lines)


def _hash_bound(rows: list[Row], hash_rate: float) -> list[str]:
    """A paragraph for each stage-in whose baseline outran SHA-256 itself: the ratio no
    hashing stage-in can pass on this machine."""
    out = []
    for row in rows:
        base = statistics.median(row.baseline)
        if row.direction.startswith("stage-in") and base > hash_rate:
            out += [
                textwrap.fill(
                    f"The {row.data} stage-in's baseline ({base:.0f} MB/s) outran SHA-256 alone "
                    f"({hash_rate:.0f} MB/s): a stage-in that hashes every byte cannot pass "
                    f"{hash_rate / base:.2f} of it here even with the hashing wholly overlapped "
                    "with the transfer (the stager hashes in a second thread), and the hashing "
                    f"shares the {os.cpu_count()} CPUs with MinIO and the transfer.",
                    width=95,
                ),
                "",
            ]
    return out


def staging_section(rows: list[Row], rounds: int, hash_rate: float, load: str) -> str:
    cpu = os.cpu_count()
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    wrap = textwrap.fill
    return "\n".join(
        [
            STAGING_HEADING,
            "",
            wrap(
                "`bench/staging.py` against a local MinIO server of its own (127.0.0.1, one drive "
                "on the same disk), the stager's own code paths (`Stager` for stage-in, `Archiver` "
                "for archive, in-process) side by side with a plain loop over the minio client's "
                "`fget_object` / `fput_object`; one untimed run of each first, then alternating, "
                "order swapped each round, each timed run started once the VM (if it reports "
                "freed memory to its host) has stopped reporting, "
                f"{rounds} rounds, medians. MB/s = 10^6 bytes/s. Goal: ratio >= 0.9. The stager "
                "also hashes every byte (SHA-256) and writes its records and manifest; the "
                "baseline does neither.",
                width=95,
            ),
            "",
            staging_table(rows, rounds),
            "",
            wrap(
                f"Measured {when} on {platform.machine()}, {cpu} CPUs, Python "
                f"{platform.python_version()}; MinIO and the benchmark share the machine "
                f"(load average during the run: {load}). SHA-256 alone ran at "
                f"{hash_rate:.0f} MB/s on it, which bounds any stage-in that hashes what it "
                "writes. Rerun: `.venv/bin/python bench/staging.py`.",
                width=95,
            ),
            "",
            *_hash_bound(rows, hash_rate),
            "Per-round numbers (MB/s, stager / baseline):",
            "",
            *[
                f"- {r.data}, {r.direction}: "
                + ", ".join(f"{s:.0f} / {b:.0f}" for s, b in zip(r.stager, r.baseline, strict=True))
                for r in rows
            ],
            "",
        ]
    )


def write_staging_doc(text: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Replace the staging section (from its heading to the next `## `), or append it."""
    existing = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = existing.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == STAGING_HEADING), None)
    if start is None:
        body = existing.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        body = before + "\n\n" + text + ("\n" + after if after else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(body.rstrip("\n") + "\n")
