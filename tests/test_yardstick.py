"""The yardstick: every library's peak and kernels, the best of them, the kernels/overhead split,
the theoretical peak, the environment line, and the clock of asynchronous frameworks."""

import json
import math
import os
import subprocess
import sys
import time
from importlib.util import find_spec

import pytest

from common import yardstick
from common.figures import figures
from common.result import RunResult
from common.roofline import shape_key
from common.timing import ASYNC_BLOCK, Trainer, harness_cost, time_steps
from implementations import REGISTRY
from implementations.kernels import LIBRARIES, REQUIRES
from tests.conftest import ROOT, run_cli, small_config

SHAPE = (8, 20, 6, 3)


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_librarys_child_times_its_peak_and_the_steps_kernels(library):
    missing = [name for name in REQUIRES[library] if find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    proc = run_cli("-m", "implementations.kernels", "--library", library, "--threads", "1", "--peak-size", "128",
                   "--shape", "8x20x6x3", "--shape", "16x32x8x4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures_ = json.loads(proc.stdout)
    assert figures_["library"] == library and math.isfinite(figures_["peak_gflops"]) and figures_["peak_gflops"] > 0
    assert figures_["calls"]  # which kernel library does its matmuls
    assert set(figures_["shapes"]) == {"8x20x6x3/float32", "16x32x8x4/float32"}
    for part in figures_["shapes"].values():
        assert part["matmul_s"] > 0 and part["elementwise_s"] > 0


def test_a_bad_shape_is_refused_in_one_line():
    proc = run_cli("-m", "implementations.kernels", "--library", "numpy", "--shape", "8x0x6x3")
    assert proc.returncode == 2 and "positive integers" in proc.stderr and "Traceback" not in proc.stderr


def child(library, peak, matmul_s, elementwise_s, **extra):
    key = "8x20x6x3/float32"
    return {"library": library, "dtype": "float32", "threads": 2, "peak_gflops": peak, "peak_size": 2048,
            "shapes": {key: {"matmul_s": matmul_s, "elementwise_s": elementwise_s, "dispatch_s": 0.0}},
            "calls": f"{library}'s", "env": {}, "blas": [], **extra}


def test_the_peak_is_the_best_library_and_the_shape_floor_the_fastest_librarys_kernels():
    doc = yardstick.summarise({"numpy": child("numpy", 200.0, 3e-4, 1e-4), "onnxruntime": child("onnxruntime", 400.0,
                                                                                                 2e-4, 1.5e-4),
                               "jax": {"library": "jax", "error": "ImportError: no jax"}}, "float32", 2)
    assert doc["peak_gflops"] == 400.0 and doc["peak_library"] == "onnxruntime"
    floor = doc["shape_floors"]["8x20x6x3/float32"]
    assert floor["library"] == "onnxruntime" and floor["matmul_s"] + floor["elementwise_s"] == pytest.approx(3.5e-4)
    assert doc["libraries"]["jax"]["error"]  # kept, and left out of the best


def test_kernels_that_a_call_could_not_resolve_do_not_set_the_shape_floor():
    unresolved = child("tensorflow", 300.0, 1e-6, 1e-6)
    unresolved["shapes"]["8x20x6x3/float32"]["unresolved"] = ["matmul_s", "elementwise_s"]
    doc = yardstick.summarise({"numpy": child("numpy", 200.0, 3e-4, 1e-4), "tensorflow": unresolved}, "float32", 2)
    assert doc["shape_floors"]["8x20x6x3/float32"]["library"] == "numpy"


def test_no_library_timed_is_an_error_that_names_each_failure():
    with pytest.raises(RuntimeError, match="numpy: boom"):
        yardstick.summarise({"numpy": {"library": "numpy", "error": "boom"}}, "float32", 1)


def test_compare_without_a_yardstick_stops_in_one_line_before_any_run(tmp_path):
    # a broken install: threadpoolctl (a dependency the kernels' children need) fails to import there
    (tmp_path / "threadpoolctl.py").write_text("raise ModuleNotFoundError(\"No module named 'threadpoolctl'\")\n")
    proc = subprocess.run([sys.executable, "compare.py", "--frameworks", "numpy", "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("python compare.py: error: no library's kernels could be timed: "
                                                    "numpy: ModuleNotFoundError: No module named 'threadpoolctl'")


def test_a_rows_distance_to_the_shape_floor_splits_into_its_kernels_and_its_overhead():
    cfg = small_config()
    measurement = {"libraries": {"numpy": child("numpy", 200.0, 3e-4, 1e-4),
                                 "torch": child("torch", 150.0, 4e-4, 2e-4)},
                   "kernels_of": {"numpy": "numpy", "torch": "torch"}}
    own = yardstick.own_kernels(measurement)
    assert own["torch"][shape_key(cfg)] == pytest.approx(6e-4)
    runs = [RunResult(name, "v", "cpu", "float32", config=cfg.to_dict(), losses=[1.0] * 30, step_times_s=[1e-3] * 30)
            for name in ("numpy", "torch")]
    floors = {shape_key(cfg): {"matmul_s": 3e-4, "elementwise_s": 1e-4, "library": "numpy"}}
    numpy_row, torch_row = figures(runs, 200.0, floors, own)
    assert torch_row.x_kernels == pytest.approx(1.5) and torch_row.x_overhead == pytest.approx(1e-3 / 6e-4)
    assert torch_row.x_shape_floor == pytest.approx(torch_row.x_kernels * torch_row.x_overhead)
    assert numpy_row.x_kernels == pytest.approx(1.0)


def test_the_cpus_yardstick_is_not_applied_to_gpu_rows():
    cfg = small_config()
    run = RunResult("torch", "v", "gpu", "float32", config=cfg.to_dict(), losses=[1.0] * 30, step_times_s=[1e-3] * 30)
    (row,) = figures([run], 200.0, {shape_key(cfg): {"matmul_s": 3e-4, "elementwise_s": 1e-4}}, {})
    assert row.median_s == pytest.approx(1e-3) and row.x_floor is None and row.x_shape_floor is None


def test_the_yardsticks_children_see_no_gpu(monkeypatch):
    # on a GPU machine JAX (and TensorFlow) would put the peak's matmul on the GPU: the CPU's
    # floors would then divide by a GPU's rate
    from common import launch

    seen = []

    def fake_child(cmd, env, timeout_s, stdout=True, cwd=None):
        seen.append(env)
        return 1, "", "no GPU here either"

    monkeypatch.setattr(launch, "run_captured", fake_child)
    with pytest.raises(RuntimeError, match="jax: no GPU here either"):
        yardstick.measure(["jax"], [(8, 20, 6, 3)], "float32", 1)
    assert seen and seen[0]["CUDA_VISIBLE_DEVICES"] == "" and seen[0]["JAX_PLATFORMS"] == "cpu"


def test_every_registered_framework_names_a_library_whose_kernels_are_timed():
    assert {impl.kernels for impl in REGISTRY.values()} <= set(LIBRARIES)


ZEN3 = {"vendor": "AuthenticAMD", "family": 25, "model": 1, "mhz": 2445.0, "flags": ["avx", "avx2", "fma"]}


def test_the_theoretical_peak_multiplies_cores_fma_units_lanes_and_the_clock():
    theory = yardstick.theoretical_peak("float32", 2, ZEN3, clock_mhz=3500.0)
    assert theory["gflops"] == pytest.approx(2 * 2 * 8 * 2 * 3.5) and "cpufreq" in theory["how"]
    float64 = yardstick.theoretical_peak("float64", 2, ZEN3, clock_mhz=3500.0)
    assert float64["gflops"] == pytest.approx(2 * 2 * 4 * 2 * 3.5)


def test_the_theoretical_peak_says_why_it_is_not_known():
    no_clock = yardstick.theoretical_peak("float32", 2, ZEN3, read_clock=False)
    # at the nominal clock: 64 FLOP/cycle x 2445 MHz
    assert no_clock["gflops"] is None and "not readable" in no_clock["why"] and "156 GFLOP/s" in no_clock["why"]
    unknown = yardstick.theoretical_peak("float32", 2, {**ZEN3, "vendor": "GenuineIntel", "family": 6},
                                         clock_mhz=3000.0)
    assert unknown["gflops"] is None and "FMA units" in unknown["why"]
    assert "AVX2" in yardstick.theoretical_peak("float32", 2, {**ZEN3, "flags": ["sse2"]}, clock_mhz=3e3)["why"]


def test_the_cpuinfo_of_the_first_core_is_read():
    text = ("vendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 17\ncpu MHz\t\t: 2600.000\n"
            "flags\t\t: avx2 fma avx512f\n\nvendor_id\t: other\n")
    assert yardstick.cpu_facts(text) == {"vendor": "AuthenticAMD", "family": 26, "model": 17, "mhz": 2600.0,
                                         "flags": ["avx2", "fma", "avx512f"]}


def test_a_blas_held_below_the_cpu_by_its_environment_is_said_in_one_line():
    pool = {"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell", "library": "libopenblas.so"}
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    held = {"numpy": child("numpy", 200.0, 3e-4, 1e-4, env=env, blas=[pool], calls="NumPy's BLAS: openblas"),
            "jax": child("jax", 400.0, 3e-4, 1e-4, env=env, blas=[pool], calls="XLA:CPU's dot")}
    avx512 = {"flags": ["avx2", "fma", "avx512f"]}
    (line,) = yardstick.kernel_env_lines(held, avx512)  # one line, however many children load it
    assert "OPENBLAS_CORETYPE=Haswell" in line and "AVX-512" in line
    assert "the matmul of numpy (also loaded by jax," in line
    assert yardstick.kernel_env_lines(held, ZEN3) == []  # Haswell's kernels are this CPU's best
    free = {"numpy": child("numpy", 400.0, 3e-4, 1e-4, blas=[{**pool, "architecture": "SkylakeX"}])}
    assert yardstick.kernel_env_lines(free, avx512) == []


def test_compare_measures_the_yardstick_of_the_libraries_its_frameworks_call(cli, tmp_path):
    proc = cli("compare.py", "--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "30",
               "--lr", "1e-3", "--frameworks", "numpy", "--rounds", "1", "--warmup", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = json.loads((tmp_path / "results.json").read_text())["measurement"]
    assert m["peak_library"] == "numpy" and set(m["libraries"]) == {"numpy"}
    assert m["shape_floors"]["8x20x6x3/float32"]["library"] == "numpy" and m["kernels_of"]["numpy"] == "numpy"
    assert "theoretical" in m and "kernel_env" in m
    assert "peak matmul (2048^3 float32" in proc.stdout and "theoretical peak:" in proc.stdout


# --- the clock of an asynchronous framework ------------------------------------------------------

class Queue:
    """A fake asynchronous device: step() queues work and returns at once; sync() waits for it all."""

    def __init__(self, step_s=0.0, sync_s=0.0, losses=None):
        self.pending, self.syncs, self.fetched, self.step_s, self.sync_s = 0, 0, 0, step_s, sync_s
        self.losses = iter(losses) if losses is not None else None

    def step(self):
        self.pending += 1
        if self.step_s:
            time.sleep(self.step_s)
        return next(self.losses) if self.losses is not None else 1.0

    def sync(self):
        self.syncs += 1
        self.pending = 0
        if self.sync_s:
            time.sleep(self.sync_s)

    def fetch(self, losses):
        assert self.pending == 0, "losses fetched before the device finished"
        self.fetched += 1
        return list(losses)


def test_an_asynchronous_trainer_is_synced_once_per_block_and_every_loss_is_kept():
    queue = Queue()
    trainer = Trainer(step=queue.step, sync=queue.sync, asynchronous=True, fetch=queue.fetch)
    clock = time_steps(trainer, 101)
    blocks = 1 + math.ceil(100 / ASYNC_BLOCK)  # step 1 alone (it compiles), then the blocks
    assert len(clock.losses) == len(clock.times_s) == 101
    assert queue.syncs == queue.fetched == blocks
    assert len(set(clock.times_s[1:1 + ASYNC_BLOCK])) == 1  # a block's steps share its time


def test_an_asynchronous_trainer_stops_at_the_block_of_its_first_non_finite_loss():
    losses = [1.0] * 30 + [math.nan] + [2.0] * 69
    queue = Queue(losses=losses)
    clock = time_steps(Trainer(step=queue.step, sync=queue.sync, asynchronous=True, fetch=queue.fetch), 100)
    assert len(clock.losses) == 31 and math.isnan(clock.losses[-1])
    assert queue.syncs == 3  # step 1, steps 2-26, then steps 27-51 holding step 31: none after it


def test_blocks_cost_an_asynchronous_framework_little_where_a_sync_per_step_costs_much():
    # 0.4 ms of host work per step; a sync that costs 0.4 ms: paid every step, it adds ~100%
    def cost(asynchronous):
        queue = Queue(step_s=0.0004, sync_s=0.0004)
        return harness_cost(Trainer(step=queue.step, sync=queue.sync, asynchronous=asynchronous, fetch=queue.fetch),
                            steps=500).cost

    assert cost(asynchronous=False) > 0.5
    assert cost(asynchronous=True) < 0.2


def test_jax_is_timed_in_blocks_and_every_step_still_judged(references):
    if find_spec("jax") is None:
        pytest.skip("jax not installed: pip install -e '.[jax]'")
    from common.runner import apply_verdict
    from tests.conftest import train

    cfg = small_config(steps=60)
    result = apply_verdict(train("jax", cfg, "grad"), references(cfg))
    assert result.status == "ok" and len(result.losses) == 60
    # within a block, every step carries the block's time
    assert len(set(result.step_times_s[1:1 + ASYNC_BLOCK])) == 1


def test_the_kernel_table_reads_every_library_and_a_setting_beside_the_default(tmp_path):
    cfg = small_config()
    measurement = yardstick.summarise({"numpy": child("numpy", 200.0, 3e-4, 1e-4),
                                       "tensorflow": child("tensorflow", 150.0, 4e-4, 2e-4)}, "float32", 2)
    measurement["kernels_of"] = {"numpy": "numpy", "tensorflow": "tensorflow", "keras-tensorflow": "tensorflow"}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"config": cfg.to_dict(), "measurement": measurement}))
    onednn = tmp_path / "onednn.json"
    onednn.write_text(json.dumps(child("tensorflow", 180.0, 3.5e-4, 2e-4, env={"TF_ENABLE_ONEDNN_OPTS": "1"})))
    proc = run_cli("benchmarks/kernel_table.py", str(results), "--also", str(onednn), "--markdown")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    tf_row = next(line for line in lines if line.startswith("| tensorflow |"))
    assert "tensorflow, keras-tensorflow" in tf_row and "| 150 |" in tf_row and "| 1.50 |" in tf_row
    assert any(line.startswith("| tensorflow (TF_ENABLE_ONEDNN_OPTS=1) |") and "| 180 |" in line for line in lines)
    assert "the shape floor is numpy's kernels, 0.400 ms" in proc.stdout


def test_the_peak_check_refuses_a_file_without_a_measured_peak(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"measurement": {}}))
    proc = run_cli("benchmarks/peak_check.py", str(bad))
    assert proc.returncode == 2 and "not a results.json with a measured peak" in proc.stderr


def test_two_passes_keep_each_librarys_best_peak_and_faster_kernels():
    slow = {"numpy": child("numpy", 100.0, 6e-4, 2e-4), "torch": child("torch", 150.0, 3e-4, 1e-4)}
    fast = {"numpy": child("numpy", 200.0, 3e-4, 1e-4), "torch": {"library": "torch", "error": "killed"}}
    doc = yardstick.combine(yardstick.summarise(slow, "float32", 2), yardstick.summarise(fast, "float32", 2))
    assert doc["passes"] == 2 and doc["peak_gflops"] == 200.0 and doc["libraries"]["numpy"]["passes"] == [100.0, 200.0]
    assert doc["libraries"]["numpy"]["shapes"]["8x20x6x3/float32"]["matmul_s"] == 3e-4
    assert doc["libraries"]["torch"]["peak_gflops"] == 150.0  # a pass that failed keeps the other's figures
