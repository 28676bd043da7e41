"""compare.py end to end on a tiny configuration, through its real command line."""

import json
import os
import subprocess
import sys

import pytest

from common.result import SCHEMA_VERSION, STATUSES, RunResult
from common.launch import run_one
from implementations import REGISTRY, Implementation
from tests.conftest import ROOT, small_config

TINY = ("--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "30", "--lr", "1e-3",
        "--threads", "1", "--warmup", "2", "--rounds", "1")
RUN_KEYS = {"framework", "variant", "device", "dtype", "losses", "step_times_s", "setup_s", "status",
            "max_rel_err", "x_noise", "weights_x_noise", "error"}


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_compare_end_to_end_writes_results_json(cli, tmp_path, dtype):
    pytest.importorskip("torch", reason="torch not installed: pip install -e '.[torch]'")
    proc = cli("compare.py", *TINY, "--dtype", dtype, "--frameworks", "numpy,torch", "--variants",
               "manual,tensors,autograd,module", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["config"]["steps"] == 30 and doc["config"]["dtype"] == dtype
    runs = doc["runs"]
    expected = [("numpy", "manual")] + [("torch", v) for v in ("tensors", "autograd", "module")]
    assert [(r["framework"], r["variant"]) for r in runs] == expected
    for run in runs:
        assert RUN_KEYS <= run.keys() and run["status"] in STATUSES
        assert run["status"] == "ok" and run["dtype"] == dtype and run["device"] == "cpu"
        assert len(run["losses"]) == len(run["step_times_s"]) == 30
        factor = doc["equivalence"]["factor"][dtype]
        assert run["x_noise"] <= factor and run["weights_x_noise"] <= factor and run["setup_s"] > 0
        assert RunResult.from_dict(run).losses == run["losses"]
    assert "verdict: all" in proc.stdout
    for column in ("final loss", "x noise", "w x noise", "match", "setup s", "median ms (IQR)", "steps/s", "x fastest"):
        assert column in proc.stdout
    assert "] 3/4 done, running torch/module/cpu/" in proc.stderr  # progress: the bar and the current run


@pytest.mark.slow
def test_device_all_without_gpu_keeps_cpu_rows_and_skips_gpu_rows(cli, tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = cli("compare.py", *TINY, "--frameworks", "numpy,torch", "--variants", "manual,autograd",
               "--device", "all", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    status = {(r["framework"], r["device"]): (r["status"], r["error"]) for r in runs}
    assert status[("numpy", "cpu")][0] == status[("torch", "cpu")][0] == "ok"
    assert status[("torch", "gpu")] == ("skipped", "no CUDA device")
    assert status[("numpy", "gpu")] == ("skipped", "NumPy runs on the CPU only")


def test_nothing_that_ran_is_a_failure_exit(cli):
    proc = cli("compare.py", *TINY, "--frameworks", "numpy", "--device", "gpu")
    assert proc.returncode == 1
    assert "verdict: nothing ran" in proc.stdout and "NumPy runs on the CPU only" in proc.stdout


def test_diverging_run_is_reported_not_matched(cli, tmp_path):
    proc = cli("compare.py", *TINY, "--lr", "10", "--frameworks", "numpy", "--out", str(tmp_path))
    assert proc.returncode == 1
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert run["status"] == "diverged" and run["error"].startswith("diverged at step")
    assert "Traceback" not in proc.stderr


def test_missing_framework_is_a_skipped_row_naming_the_extra():
    ghost = Implementation(name="ghost", module="implementations.ghost", variants=("x",),
                           requires=("no_such_package_xyz",), extra="ghost", kernels="numpy")
    assert ghost.missing() == ["no_such_package_xyz"]
    result = run_one(ghost, "x", small_config(), timeout_s=10)
    assert result.status == "skipped"
    assert result.error == "no_such_package_xyz not installed: pip install -e '.[ghost]'"


@pytest.mark.parametrize("impl", REGISTRY.values(), ids=lambda i: i.name)
def test_each_module_builds_exactly_the_registry_variants_in_order(impl):
    # In a subprocess with the entry's environment: a Keras module's backend is fixed at import.
    if impl.missing():
        pytest.skip(f"{impl.name} not installed")
    modules = [(impl.module, impl.variants)]
    if impl.distributed:
        modules.append((impl.distributed.module, (impl.distributed.variant,)))
    for module, variants in modules:
        code = (f"import json, inspect, {module} as m; print(json.dumps([list(m.BUILDERS), "
                "list(inspect.signature(m.build).parameters), [n for n in ('FRAMEWORK', 'VARIANTS', "
                "'MINIBATCH_VARIANTS', 'train') if hasattr(m, n)]]))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **dict(impl.env)},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        builders, signature, restated = json.loads(proc.stdout.strip().splitlines()[-1])
        assert builders == list(variants), module  # the registry's order, the default first
        assert signature == ["cfg", "problem", "variant"], module
        assert restated == [], f"{module} restates what the registry declares: {restated}"
    assert set(impl.minibatch) <= set(impl.variants) and (impl.sweep is None or impl.sweep in impl.variants)
