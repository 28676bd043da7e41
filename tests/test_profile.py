"""Where the time goes: profiler traces, their breakdown, the shape floor and the harness's own cost."""

from __future__ import annotations

import json
import os
import time

import pytest

from common.figures import figures
from common.profiling import TRACE, breakdown, load_trace, write_trace
from common.result import RunResult
from common.roofline import numpy_step_parts, shape_key, shape_of, time_parts
from common.timing import Trainer, harness_cost
from tests.conftest import ROOT, run_cli, small_config

pytestmark = pytest.mark.slow  # every framework under its profiler

# The step's matmuls as each profiler names them.
MATMUL = {"torch.profiler": "aten::mm", "tf.RunMetadata": "MatMul", "tf.profiler": "MatMul",
          "onnxruntime": "MatMul", "jax.profiler": "dot"}

# (module, variant, KERAS_BACKEND): every profiler the issue names, one Keras backend among them.
PROFILED = [
    ("implementations.pytorch", "module", None),
    ("implementations.pytorch", "compile", None),
    ("implementations.tensorflow_graphs", "variables", None),  # TF1 Session: RunMetadata
    ("implementations.tensorflow_graphs", "function", None),  # TF2: tf.profiler
    ("implementations.onnx_runtime", "step", None),
    ("implementations.onnx_runtime", "loop", None),
    ("implementations.keras_api", "fit", "torch"),
]
SIZES = ["--batch", "16", "--d-in", "40", "--hidden", "12", "--d-out", "4", "--steps", "30", "--warmup", "2",
         "--lr", "1e-3"]


@pytest.mark.parametrize("module, variant, backend", PROFILED, ids=[f"{m.split('.')[-1]}-{v}" for m, v, _ in PROFILED])
def test_each_trace_opens_and_holds_the_steps_matmuls(module, variant, backend, tmp_path):
    pytest.importorskip({"pytorch": "torch", "tensorflow_graphs": "tensorflow", "onnx_runtime": "onnxruntime",
                         "keras_api": "keras"}[module.split(".")[-1]])
    env = {**os.environ, **({"KERAS_BACKEND": backend} if backend else {})}
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", module, "--variant", variant, *SIZES, "--profile", str(tmp_path),
                          "--json", str(tmp_path / "result.json")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads((tmp_path / TRACE).read_text())  # plain Chrome trace JSON: what Perfetto opens
    assert doc["traceEvents"]
    profiler, events = load_trace(tmp_path / TRACE)
    names = " ".join(e["name"] + " " + str((e.get("args") or {}).get("op") or (e.get("args") or {}).get("op_name"))
                     for e in events)
    assert MATMUL[profiler] in names
    result = RunResult.from_json((tmp_path / "result.json").read_text())
    b = result.profile
    assert b["steps"] == 30 and b["kernel_ms"] > 0 and b["ops"] >= 3
    assert any(MATMUL[profiler].lower() in name.lower() for name, _ in b["top"])
    assert b["kernel_ms"] + b["overhead_ms"] == pytest.approx(b["step_ms"], rel=1e-6) or b["overhead_ms"] == 0
    assert "profile (" in out.stdout


def _event(name, ts, dur, tid=1, cat="cpu_op"):
    return {"name": name, "ph": "X", "ts": ts, "dur": dur, "pid": 1, "tid": tid, "cat": cat}


def test_breakdown_counts_leaf_ops_once_and_the_rest_as_overhead(tmp_path):
    events = [
        _event("aten::linear", 0, 100), _event("aten::matmul", 5, 90), _event("aten::mm", 10, 60),
        _event("aten::empty", 12, 2),  # an allocation nested in mm does not make mm a non-leaf
        _event("aten::mm", 50, 40, tid=2),  # on another thread, overlapping: the union counts 10..90 once
        _event("aten::view", 95, 1),  # a view: framework work
        _event("TorchDynamo Cache Lookup", 200, 30),  # the framework's own leaf: overhead
        _event("aten::relu", 300, 20),
    ]
    write_trace(tmp_path / TRACE, events, "torch.profiler")
    b = breakdown(tmp_path / TRACE, steps=2, step_s=1e-3)
    assert b.ops == 1.5  # mm, mm, relu over 2 steps
    assert b.kernel_ms == pytest.approx((80 + 20) / 1e3 / 2)
    assert b.overhead_ms == pytest.approx(1.0 - 0.05)
    assert b.top[0] == ("aten::mm", pytest.approx(0.05))


def test_an_unknown_trace_is_refused_in_one_line(tmp_path):
    (tmp_path / TRACE).write_text(json.dumps({"traceEvents": []}))
    with pytest.raises(ValueError, match="not a fourways trace"):
        load_trace(tmp_path / TRACE)


def test_shape_floor_times_the_steps_own_arithmetic_and_feeds_the_table():
    cfg = small_config(batch=32, d_in=200, hidden=50, d_out=5)
    floor = time_parts(*numpy_step_parts(shape_of(cfg), cfg.dtype, cfg.lr), budget_s=0.05)
    assert floor["matmul_s"] > 0 and floor["elementwise_s"] > 0
    result = RunResult("numpy", "manual", "cpu", cfg.dtype, config=cfg.to_dict(), losses=[1.0] * 30,
                       step_times_s=[0.01] * 30)
    (row,) = figures([result], peak_gflops=100.0, shape_floors={shape_key(cfg): floor})
    assert row.shape_floor_s == pytest.approx(floor["matmul_s"] + floor["elementwise_s"])
    assert row.x_shape_floor == pytest.approx(0.01 / row.shape_floor_s)


def test_harness_cost_sees_what_the_per_step_measurement_adds():
    # The sync after every lap is what the harness adds here; a bare run syncs once at the end
    def slow_sync():
        time.sleep(0.002)

    bare_s, cost, pair_costs = harness_cost(Trainer(step=lambda: 0.0, sync=slow_sync), steps=100)
    assert bare_s < 0.002 and cost > 5 and len(pair_costs) == 4 and min(pair_costs) > 5


def test_harness_cost_is_none_for_one_call_loops_and_runs_too_short_to_tell():
    assert harness_cost(Trainer(run=lambda steps, clock: None), steps=400) is None
    assert harness_cost(Trainer(step=lambda: 0.0), steps=99) is None  # blocks under 25 steps


@pytest.mark.parametrize("flags, message", [
    (["--profile"], "--profile needs --out"),
    (["--profile", "--sweep", "--out", "{tmp}"], "--profile cannot be combined with --sweep"),
    (["--profile", "--workers", "2", "--out", "{tmp}"], "--profile cannot be combined with --workers"),
])
def test_profile_refuses_what_it_cannot_do_in_one_line(flags, message, tmp_path):
    out = run_cli("compare.py", *[f.format(tmp=tmp_path) for f in flags])
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_compare_profile_writes_a_trace_per_run_and_the_breakdown_everywhere(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    sizes = [*SIZES[:SIZES.index("--steps")], "--steps", "100"]  # blocks of 25 steps for the harness cost
    out = run_cli("compare.py", "--frameworks", "numpy,torch,onnx", "--variants", "manual,tensors,step",
                  *sizes, "--warmup", "2", "--lr", "1e-3", "--rounds", "1", "--profile", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "where the time goes" in out.stdout
    traces = sorted(p.parent.name for p in (tmp_path / "traces").glob("*/trace.json"))
    assert traces == ["onnx-step-cpu-float32", "torch-tensors-cpu-float32"]
    doc = json.loads((tmp_path / "results.json").read_text())
    profiled = {r["framework"]: r["profile"] for r in doc["runs"]}
    assert profiled["numpy"] is None and profiled["torch"]["trace"] == "traces/torch-tensors-cpu-float32/trace.json"
    csv_text = (tmp_path / "results.csv").read_text()
    assert "profile_kernel_ms" in csv_text.splitlines()[0]
    assert "## Where the time goes" in (tmp_path / "report.md").read_text()
    assert "harness %" in out.stdout and "x shape floor" in out.stdout


def test_memory_and_start_up_of_a_run_alone(tmp_path):
    out = run_cli("-m", "implementations.numpy", *SIZES, "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    r = RunResult.from_json((tmp_path / "r.json").read_text())
    if r.start_s is None:
        pytest.skip("no /proc here: memory and start-up are read from it")
    assert 0 < r.start_s < 60 and r.build_s >= 0 and r.first_step_s > 0
    assert 0 < r.import_mb <= r.peak_mb and 0 < r.build_mb <= r.peak_mb
    (row,) = figures([r], None)
    assert row.to_first_step_s == pytest.approx(r.start_s + r.build_s + r.first_step_s)


def test_the_proc_readers_agree_with_each_other():
    from common.memory import peak_rss_mb, process_age_s, rss_mb

    if rss_mb() is None:
        pytest.skip("no /proc here")
    before = rss_mb()
    import numpy as np

    block = np.ones(16 * 2**20, np.float32)  # 64 MB, every page written
    assert rss_mb() >= before + 60 and peak_rss_mb() >= rss_mb()
    del block
    assert process_age_s() > 0
