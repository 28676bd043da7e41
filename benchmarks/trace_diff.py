"""Where two profiled runs differ: each trace's events by self time per step, side by side.

    python benchmarks/trace_diff.py docs/cpu/traces/torch-module-cpu-float32/trace.json \\
        docs/cpu/traces/torch-compile-cpu-float32/trace.json

Reads traces that `compare.py --profile` (or an implementation's `--profile DIR`) wrote. An
event's self time is its duration less that of the events nested directly inside it on the same
thread, so each microsecond is counted once, in the innermost event that covers it: the kernels'
own time, and the framework's (Dynamo's guards, autograd's engine, the optimizer) apart from them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.profiling import KERNELS, PROFILE_STEPS, load_trace  # noqa: E402


def self_times(path: Path) -> tuple[str, dict[str, float]]:
    """(profiler, microseconds of self time per event name over the whole trace)."""
    profiler, events = load_trace(path)
    kernels = {id(e) for _, e in KERNELS[profiler](events)}
    by_thread = defaultdict(list)
    for e in events:
        if e.get("cat") != "Trace":  # torch.profiler's span of the whole profile, its start and stop included
            by_thread[(e.get("pid"), e.get("tid"))].append(e)
    totals: dict[str, float] = defaultdict(float)
    for thread in by_thread.values():
        thread.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack: list[list] = []  # [name, end, self time left]
        for e in thread:
            start, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][1] <= start:
                name, _, left = stack.pop()
                totals[name] += left
            if stack:
                stack[-1][2] -= dur
            label = f"[kernel] {e['name']}" if id(e) in kernels else re.sub(r"[a-z0-9]{40,}", "<hash>", e["name"])
            stack.append([label, start + dur, dur])
        for name, _, left in stack:
            totals[name] += left
    return profiler, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs=2, type=Path, metavar="TRACE")
    parser.add_argument("--steps", type=int, default=PROFILE_STEPS,
                        help=f"profiled steps in each trace (default {PROFILE_STEPS}, as --profile runs them)")
    parser.add_argument("--top", type=int, default=12, help="events shown per trace (default 12)")
    args = parser.parse_args(argv)
    try:
        columns = [self_times(p) for p in args.traces]
    except (OSError, ValueError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    for path, (profiler, totals) in zip(args.traces, columns):
        per_step = {name: us / args.steps / 1e3 for name, us in totals.items()}
        print(f"\n{path} ({profiler}): {sum(per_step.values()):.3f} ms of events per step, by self time (the rest "
              "of the profiled step, in the breakdown table, ran in no op: Python between ops, the harness's loop)")
        for name, ms in sorted(per_step.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {ms:8.4f} ms  {name[:100]}")
    a, b = ({name: us / args.steps / 1e3 for name, us in t.items()} for _, t in columns)
    gaps = sorted(((b.get(n, 0.0) - a.get(n, 0.0), n) for n in set(a) | set(b)), reverse=True)
    print(f"\nwhere the second spends more per step than the first (top {args.top}):")
    for gap, name in gaps[:args.top]:
        print(f"  {gap:+8.4f} ms  {name[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
