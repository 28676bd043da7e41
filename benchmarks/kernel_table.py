"""Each kernel library of a committed comparison, side by side: what does its matmuls, its large
matmul's rate, and the lecture step's kernels at the comparison's size; read from a results.json
(measurement.libraries), plus any kernel measurements made under another setting.

python benchmarks/kernel_table.py docs/cpu/results.json [--also KERNELS_JSON ...] --markdown

An --also file is what `python -m implementations.kernels --json PATH` writes; its row is labelled
with the kernel-steering variables it recorded (e.g. TF_ENABLE_ONEDNN_OPTS=1), so a documented
setting's effect is read beside the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.report import markdown  # noqa: E402


def _setting(f: dict, run_env: dict) -> str:
    """What an --also measurement set that the comparison's own run of that library did not: its
    kernel-steering variables that differ (the machine's own, recorded by both, are left out)."""
    changed = {k: v for k, v in f.get("env", {}).items() if run_env.get(k) != v}
    changed |= {k: "(unset)" for k in run_env if k not in f.get("env", {})}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "its default, timed beside them"


def rows(measurement: dict, also: list[dict], key: str) -> list[list[str]]:
    kernels_of = measurement.get("kernels_of") or {}
    floor = (measurement.get("shape_floors") or {}).get(key, {})
    table = [["library", "its matmuls run in", "peak GFLOP/s", "five matmuls ms", "elementwise ms",
              "dispatch per call ms", "kernels x fastest", "frameworks on it"]]
    best = floor.get("matmul_s", 0) + floor.get("elementwise_s", 0)
    libraries = [(f, "") for f in measurement["libraries"].values()]
    libraries += [(f, _setting(f, measurement["libraries"].get(f["library"], {}).get("env", {}))) for f in also]
    for f, setting in sorted(libraries, key=lambda pair: -pair[0].get("peak_gflops", 0)):
        name = f["library"] + (f" ({setting})" if setting else "")
        if "error" in f:
            table.append([name, f"not timed: {f['error']}", "", "", "", "", "", ""])
            continue
        part = f["shapes"].get(key, {})
        total = part.get("matmul_s", 0) + part.get("elementwise_s", 0)
        users = ", ".join(name for name, lib in kernels_of.items() if lib == f["library"]) if not setting else "-"
        table.append([name, f["calls"], f"{f['peak_gflops']:.0f}",
                      f"{part['matmul_s'] * 1e3:.3f}" if part else "",
                      f"{part['elementwise_s'] * 1e3:.3f}" if part else "",
                      f"{part['dispatch_s'] * 1e3:.3f}" if part.get("dispatch_s") else "-",
                      f"{total / best:.2f}" if part and best else "", users])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="KERNELS_JSON")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (as docs/measurement.md shows it)")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.results.read_text())
        measurement = doc["measurement"]
        measurement["libraries"]  # noqa: B018 -- present only in results made with the yardstick
        also = [json.loads(path.read_text()) for path in args.also]
    except (OSError, ValueError, KeyError) as exc:
        parser.error(f"not a results.json with every library's kernels, or an unreadable --also file ({exc})")
    cfg = doc["config"]
    key = f"{cfg['batch']}x{cfg['d_in']}x{cfg['hidden']}x{cfg['d_out']}/{cfg['dtype']}"
    table = rows(measurement, also, key)
    print(markdown(table) if args.markdown else "\n".join("  ".join(row) for row in table))
    floor = measurement["shape_floors"][key]
    print(f"\nAt {key}: the shape floor is {floor['library']}'s kernels, "
          f"{(floor['matmul_s'] + floor['elementwise_s']) * 1e3:.3f} ms; the peak, {measurement['peak_gflops']:.0f} "
          f"GFLOP/s, is {measurement['peak_library']}'s ({args.results}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
