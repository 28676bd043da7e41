"""Where a step's time goes: each framework's own profiler trace, read back as one breakdown.

Every trace is written as Chrome trace-event JSON (`trace.json`), which Perfetto
(ui.perfetto.dev) and chrome://tracing open. Frameworks whose profiler writes that format
(torch.profiler, ONNX Runtime) are kept as written; TensorFlow's RunMetadata and its XSpace
files (TF2, Keras on TF, JAX) are converted here. Each file names its profiler in
`otherData.fourways_profiler`, which says how its events are read:

- a *kernel* is an event that does the step's arithmetic: a leaf ATen op that computes
  (torch; views and allocations are framework work), an ORT node's kernel time, a TF op's
  kernel, an XLA op;
- time inside kernels is the union of their intervals (kernels on parallel threads count once);
- the rest of the step, as the harness timed it under the profiler, is framework, Python and
  dispatch overhead.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

TRACE = "trace.json"
PROFILE_STEPS = 50  # profiled steps per run: enough to average, small enough to open in a browser

# ATen ops that only make views, allocate or read metadata: framework work, not arithmetic.
TORCH_NO_COMPUTE = frozenset(
    "aten::" + name for name in (
        "empty", "empty_strided", "empty_like", "as_strided", "view", "t", "transpose", "expand", "detach",
        "resolve_conj", "resolve_neg", "_reshape_alias", "reshape", "permute", "result_type", "lift_fresh",
        "alias", "unsqueeze", "squeeze", "_unsafe_view", "numpy_T", "set_", "is_nonzero", "zeros", "ones",
        "new_empty", "new_empty_strided", "to", "_to_copy", "select", "slice", "contiguous"))
# TensorFlow graph nodes that move or name tensors without computing.
TF_NO_COMPUTE = frozenset(("NoOp", "_Arg", "_Retval", "_Recv", "_Send", "Identity", "Const", "_SOURCE", "_SINK",
                           "ReadVariableOp", "VarHandleOp", "Placeholder",
                           # Keras' input pipeline calling back into Python for the next batch: data, not the step
                           "PyFunc", "EagerPyFunc", "IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue",
                           "OptionalHasValue"))
ORT_CONTROL_FLOW = frozenset(("Loop", "If", "Scan"))
_TF_OP_EVENT = re.compile(r"^([^:\s][^:]*):([A-Za-z_][A-Za-z0-9_]*)$")  # "matmul:_MklMatMul" on a TF thread


@dataclass
class Breakdown:
    """One profiled run, per step: what ran, how long inside kernels, and the rest."""

    profiler: str
    steps: int
    step_ms: float  # the harness's step time while profiling (profilers perturb: never the table's median)
    ops: float  # kernels executed per step
    kernel_ms: float  # time inside them per step
    overhead_ms: float  # step_ms - kernel_ms: framework, Python and dispatch
    top: list[tuple[str, float]] = field(default_factory=list)  # the 3 kernels that take longest, ms per step
    trace: str | None = None  # the trace file, relative to the --out folder

    @property
    def overhead_share(self) -> float:
        return self.overhead_ms / self.step_ms if self.step_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Breakdown":
        return cls(**{**data, "top": [tuple(t) for t in data.get("top", [])]})


def write_trace(path: Path, events: list[dict], profiler: str) -> Path:
    """Chrome trace-event JSON with the profiler named (what breakdown() reads it by)."""
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms",
                                "otherData": {"fourways_profiler": profiler}}))
    return path


def tag_trace(path: Path, profiler: str, keep=None) -> Path:
    """Name the profiler in a trace a framework wrote itself; `keep(events)` may trim it."""
    doc = json.loads(path.read_text())
    if isinstance(doc, list):  # ONNX Runtime writes a bare event array
        doc = {"traceEvents": doc}
    if keep is not None:
        doc["traceEvents"] = keep(doc["traceEvents"])
    doc.setdefault("otherData", {})["fourways_profiler"] = profiler
    path.write_text(json.dumps(doc))
    return path


def load_trace(path: Path) -> tuple[str, list[dict]]:
    """(profiler, complete events) of a trace written here; ValueError on anything else."""
    path = Path(path)
    # docs/ keeps its traces gzipped; Perfetto and chrome://tracing open either
    doc = json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_text())
    profiler = (doc.get("otherData") or {}).get("fourways_profiler") if isinstance(doc, dict) else None
    if profiler not in KERNELS:
        raise ValueError(f"{path}: not a fourways trace (no known otherData.fourways_profiler)")
    events = [e for e in doc.get("traceEvents", []) if e.get("ph") == "X" and "dur" in e]
    return profiler, events


def _leaves(events: list[dict]) -> list[dict]:
    """The events with no other event nested inside them on the same thread."""
    by_thread = defaultdict(list)
    for e in events:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    leaves = []
    for thread in by_thread.values():
        thread.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack: list[list] = []  # [event, end, has_child]
        for e in thread:
            start = float(e["ts"])
            while stack and stack[-1][1] <= start:
                top = stack.pop()
                if not top[2]:
                    leaves.append(top[0])
            if stack:
                stack[-1][2] = True
            stack.append([e, start + float(e["dur"]), False])
        leaves += [top[0] for top in stack if not top[2]]
    return leaves


def _torch_kernels(events):
    device = [e for e in events if e.get("cat") == "kernel"]  # CUDA kernels, when the run was on a GPU
    if device:
        return [(e["name"], e) for e in device]
    # Views and allocations nested in an op (aten::mm allocates its output) do not make it a non-leaf
    ops = [e for e in events if e.get("cat") == "cpu_op" and e["name"] not in TORCH_NO_COMPUTE]
    # A leaf that is neither an ATen op nor an Inductor kernel is the framework's own (Dynamo's guards)
    return [(e["name"], e) for e in _leaves(ops) if e["name"].startswith("aten::") or "cpp_fused" in e["name"]]


def _ort_kernels(events):
    # A Loop node's time is that of the nodes of its body, which are events of their own
    return [((e.get("args") or {}).get("op_name", e["name"]), e) for e in events
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
            and (e.get("args") or {}).get("op_name") not in ORT_CONTROL_FLOW]


def _marked_kernels(events):
    return [((e.get("args") or {}).get("op", e["name"]), e) for e in events if e.get("cat") == "kernel"]


# How each profiler's kernels are found: (op name, event) pairs.
KERNELS = {"torch.profiler": _torch_kernels, "onnxruntime": _ort_kernels, "tf.RunMetadata": _marked_kernels,
           "tf.profiler": _marked_kernels, "jax.profiler": _marked_kernels}


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def breakdown(path: Path, steps: int, step_s: float) -> Breakdown:
    """The per-step breakdown of a trace of `steps` steps that the harness timed at `step_s` each."""
    profiler, events = load_trace(path)
    kernels = KERNELS[profiler](events)
    per_op = defaultdict(float)
    for name, e in kernels:
        per_op[name] += float(e["dur"])
    kernel_ms = _union_us([(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for _, e in kernels]) / 1e3 / steps
    step_ms = step_s * 1e3
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:3]
    return Breakdown(profiler=profiler, steps=steps, step_ms=step_ms, ops=len(kernels) / steps, kernel_ms=kernel_ms,
                     overhead_ms=max(step_ms - kernel_ms, 0.0),
                     top=[(name, us / 1e3 / steps) for name, us in top])


# --- converters: TensorFlow's own formats into trace events ------------------------------------

def _tf_op_type(label: str) -> str:
    """"loss = Sum(sq, axes)" -> "Sum"."""
    _, _, call = label.partition(" = ")
    return call.split("(", 1)[0] if call else label


def run_metadata_events(metadata: list) -> list[dict]:
    """TF1 RunMetadata step stats (one per profiled Session.run) as trace events, compute nodes
    marked as kernels."""
    events = []
    for md in metadata:
        for pid, dev in enumerate(md.step_stats.dev_stats):
            for node in dev.node_stats:
                op = _tf_op_type(node.timeline_label)
                events.append({"name": node.node_name, "ph": "X", "ts": node.all_start_micros,
                               "dur": max(node.all_end_rel_micros, 0), "pid": pid, "tid": node.thread_id,
                               "cat": "trace" if op in TF_NO_COMPUTE else "kernel",
                               "args": {"op": op, "device": dev.device}})
    return events


def xspace_events(xspace) -> list[dict]:
    """An XSpace (TF's and JAX's profiler output) as trace events, kernels marked: a TF op's
    kernel ("name:OpType" on a host compute thread) or an XLA op (an event nested in an XLA
    ThunkExecutor::Execute, e.g. "MatMul.6", "broadcast_maximum_fusion")."""
    events = []
    for pid, plane in enumerate(xspace.planes):
        for line in plane.lines:
            named = [(plane.event_metadata[e.metadata_id].name, e.offset_ps, e.offset_ps + e.duration_ps)
                     for e in line.events]
            thunks = [(start, stop) for name, start, stop in named if name == "ThunkExecutor::Execute"]
            for name, start, stop in named:
                op = _tf_kernel(plane.name, line.name, name)
                if op is None and any(a <= start and stop <= b for a, b in thunks) and not _XLA_NOT_OPS.match(name):
                    op = re.sub(r"\.\d+$", "", name)
                events.append({"name": name, "ph": "X", "pid": pid, "tid": line.id,
                               "ts": (line.timestamp_ns * 1000 + start) / 1e6, "dur": (stop - start) / 1e6,
                               "cat": "kernel" if op else "trace", "args": {"op": op} if op else {}})
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": plane.name}})
    return events


_XLA_NOT_OPS = re.compile(r"^(end: |ThunkExecutor|ThreadpoolListener|Memory|BlockUntilReady)")


def _tf_kernel(plane: str, line: str, name: str) -> str | None:
    """A TF op's kernel on the host: "name:OpType" on a compute thread."""
    match = _TF_OP_EVENT.match(name)
    if not match or not plane.startswith("/host") or line == "python":
        return None
    op = match.group(2)
    return None if op in TF_NO_COMPUTE else op


def table_rows(rows) -> list[list[str]]:
    """The breakdown table: a header row, then one row per profiled run (Figures with .profile)."""
    out = [["run", "profiler", "step ms (profiled)", "kernels/step", "in kernels ms", "overhead ms", "overhead %",
            "top 3 kernels (ms/step)"]]
    for f in rows:
        b = f.profile
        if b is None:
            continue
        top = ", ".join(f"{name} {ms:.3f}" for name, ms in b.top)
        out.append([f.name, b.profiler, f"{b.step_ms:.3f}", f"{b.ops:.1f}", f"{b.kernel_ms:.3f}",
                    f"{b.overhead_ms:.3f}", f"{100 * b.overhead_share:.0f}", top])
    return out
