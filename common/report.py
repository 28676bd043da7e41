"""Reporting: the console table, the verdict, and results.json. Reads numbers, never measures."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

from common.config import RunConfig
from common.equivalence import TOLERANCE
from common.result import SCHEMA_VERSION, RunResult
from common.timing import step_stats

COLUMNS = ("implementation", "variant", "device", "dtype", "final loss", "max rel err", "@step", "match",
           "setup s", "median ms (IQR)", "steps/s", "x fastest")


def _median_s(result: RunResult) -> float | None:
    stats = step_stats(result.step_times_s, result.config.get("warmup", 0))
    return stats.median_s if stats and result.status == "ok" else None


def _row(result: RunResult, fastest_s: float | None) -> list[str]:
    row = [result.framework, result.variant, result.device, result.dtype]
    if result.status in ("skipped", "failed"):
        return row + ["", "", "", result.status, "", "", "", ""]
    stats = step_stats(result.step_times_s, result.config.get("warmup", 0))
    match = {"ok": "yes", "mismatch": "NO", "diverged": "diverged"}[result.status]
    row += [
        f"{result.losses[-1]:.6g}" if result.losses else "",
        f"{result.max_rel_err:.1e}" if result.max_rel_err is not None else "",
        str(result.worst_step) if result.worst_step is not None else "",
        match,
        f"{result.setup_s:.3f}" if result.setup_s is not None else "",
    ]
    if stats is None:
        return row + ["", "", ""]
    noisy = " ~" if stats.noisy else ""
    row.append(f"{stats.median_s * 1e3:.3f} ({stats.iqr_s * 1e3:.3f}){noisy}")
    row.append(f"{1 / stats.median_s:,.0f}")
    row.append(f"{stats.median_s / fastest_s:.2f}" if fastest_s and result.status == "ok" else "")
    return row


def format_table(results: list[RunResult]) -> str:
    """One aligned text table; notes (errors, skips, noisy spreads) listed under it."""
    medians = [m for m in (_median_s(r) for r in results) if m]
    fastest = min(medians) if medians else None
    lines = _aligned([list(COLUMNS)] + [_row(r, fastest) for r in results])
    notes = [f"  {r.name}: {r.error}" for r in results if r.error]
    notes += [f"  {r.name}: {r.note}" for r in results if r.note and r.status == "ok"]
    if any((s := step_stats(r.step_times_s, r.config.get("warmup", 0))) and s.noisy
           for r in results if r.status == "ok"):
        notes.append("  ~ IQR above 10% of the median: that row's time is noisy, rerun before quoting it")
    if notes:
        lines += ["", "notes:"] + notes
    return "\n".join(lines)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


DEPLOY_COLUMNS = ("model", "runtime", "batch", "dtype", "median us (IQR)", "samples/s", "max rel err", "match")


def format_deploy_table(rows: list[dict], tolerance: dict) -> str:
    """The inference table: one row per (model, runtime, batch)."""
    body = [list(DEPLOY_COLUMNS)]
    for r in rows:
        err = r["max_rel_err"]
        body.append([r["model"], r["runtime"], str(r["batch"]), r["dtype"],
                     f"{r['median_s'] * 1e6:.1f} ({r['iqr_s'] * 1e6:.1f})", f"{r['batch'] / r['median_s']:,.0f}",
                     "(source)" if err is None else f"{err:.1e}",
                     "" if err is None else ("yes" if err <= tolerance[r["dtype"]] else "NO")])
    return "\n".join(_aligned(body))


def verdict(results: list[RunResult]) -> tuple[bool, str]:
    """(all runs that ran matched, one line saying so)."""
    ran = [r for r in results if r.status != "skipped"]
    bad = [r for r in ran if r.status != "ok"]
    skipped = len(results) - len(ran)
    tail = f"; {skipped} skipped" if skipped else ""
    if not ran:
        return False, f"verdict: nothing ran{tail}"
    if bad:
        names = ", ".join(f"{r.name} ({r.status})" for r in bad)
        return False, f"verdict: {len(bad)} of {len(ran)} runs did NOT match the NumPy reference: {names}{tail}"
    dtypes = sorted({r.dtype for r in ran})
    bounds = ", ".join(f"{d} {TOLERANCE[d]:g}" for d in dtypes)
    return True, f"verdict: all {len(ran)} runs match the NumPy reference on every step (bound {bounds}){tail}"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def results_document(cfg: RunConfig, results: list[RunResult]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "config": cfg.to_dict(),
        "machine": machine_info(),
        "tolerance": TOLERANCE,
        "runs": [r.to_dict() for r in results],
    }


def write_json_atomic(path: Path, document: dict) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
