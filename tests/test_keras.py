"""Keras on every installed backend: the same losses as the reference, a true sum, honest skips."""

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

from common.launch import config_flags
from implementations import ALIASES, REGISTRY
from tests.conftest import ROOT, small_config

pytest.importorskip("keras", reason="keras not installed: pip install -e '.[keras]'")
BACKENDS = [b for b in ("tensorflow", "torch", "jax") if find_spec(b) is not None]
SKIPS_FLOAT64 = {"torch"}  # keras-team/keras issue 23704: float64 matmuls computed in float32


def run_backend(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module", params=["float64", "float32"])
def keras_runs(request, tmp_path_factory):
    """compare.py over every Keras backend and variant, the default 500-step run."""
    out = tmp_path_factory.mktemp(f"keras-{request.param}")
    proc = subprocess.run([sys.executable, "compare.py", "--frameworks", "keras", "--dtype", request.param,
                           "--rounds", "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    runs = json.loads((out / "results.json").read_text())["runs"]
    return request.param, proc, runs


@pytest.mark.slow
def test_every_backend_and_variant_matches_or_is_refused_with_the_reason(keras_runs):
    dtype, proc, runs = keras_runs
    assert [r["framework"] for r in runs] == [f for f in ALIASES["keras"] for _ in (0, 1)]
    for run in runs:
        backend = run["framework"].removeprefix("keras-")
        if backend not in BACKENDS:
            assert run["status"] == "skipped" and "pip install" in run["error"]
        elif dtype == "float64" and backend in SKIPS_FLOAT64:
            assert run["status"] == "skipped"
            assert "float32" in run["error"] and "23704" in run["error"]
        else:
            assert run["status"] == "ok", run
            assert len(run["losses"]) == 500 and run["losses"][-1] < 1e-6 * run["losses"][0]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "keras-tensorflow" in proc.stdout  # the table names the backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_and_gradient_are_true_sums_not_means(backend):
    dtype = "float32" if backend in SKIPS_FLOAT64 else "float64"
    proc = run_backend(backend, "-m", "tests.keras_sum_check", dtype)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    bound = 1e-12 if dtype == "float64" else 1e-6
    assert got["loss_err"] < bound and got["w1_err"] < bound and got["w2_err"] < bound, got
    # The trap the custom loss avoids: Keras' default MSE would report ~1/(N*D_out) of it.
    assert got["default_mse_over_sum"] < 1e-2
    # The harness's per-step loss is the loss fit averages into its own "loss" log, step by step
    # (the losses one step late would be off by up to 8% over these five steps).
    assert got["step_loss_first"] and got["running_mean_err"] < bound, got


@pytest.mark.parametrize("backend, variant", [(b, v) for b in BACKENDS for v in REGISTRY[f"keras-{b}"].variants])
def test_each_variant_runs_alone_on_a_small_config_matched_and_named_by_its_backend(backend, variant, tmp_path):
    # The fast tier's check of every Keras backend and variant (the module checks itself against
    # the reference, as it does run alone); the lecture's size is test_every_backend_and_variant_...
    out, cfg = tmp_path / "r.json", small_config()
    proc = run_backend(backend, "-m", "implementations.keras_api", "--variant", variant, *config_flags(cfg),
                       "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["framework"] == f"keras-{backend}" and result["status"] == "ok", result
    assert len(result["losses"]) == cfg.steps
    assert result["versions"]["keras"] and result["versions"][backend]


def test_gpu_request_without_gpu_is_a_skip():
    proc = run_backend("tensorflow", "-m", "implementations.keras_api", "--device", "gpu", "--steps", "2")
    assert proc.returncode == 0
    assert "skipped (no GPU visible to Keras' tensorflow backend)" in proc.stdout
