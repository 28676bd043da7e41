"""Data-parallel training: each engine on 2 loopback workers computes the reference's losses,
only rank 0 reports, and a worker that dies or hangs ends as a failed row with no orphan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError
from common.equivalence import FACTOR
from common.launch import run_one
from common.runner import apply_verdict
from implementations import REGISTRY, Distributed, Implementation
from tests.conftest import small_config

pytestmark = pytest.mark.slow  # data-parallel runs of several processes, and their faults

ENGINES = ["torch", "tensorflow", "jax"]


def _engine(framework: str) -> Implementation:
    impl = REGISTRY[framework]
    if impl.missing():
        pytest.skip(f"{framework} not installed")
    return impl


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("framework", ENGINES)
def test_engine_on_loopback_workers_matches_the_reference_in_float64(framework, workers, references):
    cfg = small_config(dtype="float64", workers=workers, threads=2)
    impl = _engine(framework)
    result = apply_verdict(run_one(impl, impl.distributed.variant, cfg, timeout_s=300), references(cfg))
    assert result.status == "ok", result.error
    assert result.x_noise <= FACTOR["float64"] and result.weights_x_noise <= FACTOR["float64"]
    assert len(result.losses) == cfg.steps and result.losses[-1] < result.losses[0]
    assert result.world_size == workers and result.threads == cfg.threads  # rank 0's report, for all
    assert result.comm_s > 0


def test_workers_must_divide_the_batch():
    with pytest.raises(ConfigError, match="--workers 3 must divide --batch N=8"):
        small_config(workers=3)
    with pytest.raises(ConfigError, match="--workers must be an integer >= 1"):
        small_config(workers=0)
    assert small_config(workers=2, samples=32).steps == 4  # minibatches, each split over the workers


@pytest.mark.parametrize("framework, feed", [("torch", "resident"), ("torch", "prefetch"), ("tensorflow", "copy")])
def test_engine_on_minibatches_takes_its_rows_of_each_shared_batch_and_matches_in_float64(framework, feed,
                                                                                          references):
    cfg = small_config(dtype="float64", workers=2, threads=2, samples=32, epochs=2, feed=feed)
    impl = _engine(framework)
    result = apply_verdict(run_one(impl, impl.distributed.variant, cfg, timeout_s=300), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps == 8 and result.feed == feed and result.world_size == 2
    assert result.x_noise <= FACTOR["float64"] and result.weights_x_noise <= FACTOR["float64"]


def test_worker_orders_partition_each_batch_of_the_shared_order():
    from common import data

    cfg = small_config(workers=2, samples=32, epochs=2)
    mine = [data.worker_order(cfg, rank) for rank in range(2)]
    assert all(m.shape == (cfg.steps, cfg.batch // 2) for m in mine)
    np.testing.assert_array_equal(np.concatenate(mine, axis=1), data.batch_order(cfg))


def test_an_engine_without_minibatches_is_a_skipped_row_naming_those_with(cli):
    proc = cli("compare.py", "--frameworks", "jax", "--workers", "2", "--samples", "128", "--batch", "8",
               "--d-in", "20", "--hidden", "6", "--d-out", "3", "--rounds", "1")
    assert "Traceback" not in proc.stderr
    assert "--workers with --samples is built for torch (ddp), tensorflow (multiworker); jax's sharded engine" \
        in proc.stdout


def test_each_worker_gets_its_share_of_the_threads():
    assert small_config(threads=2, workers=2).worker_threads == 1
    assert small_config(threads=4, workers=2).worker_threads == 2
    assert small_config(threads=1, workers=2).worker_threads == 1  # never zero


@pytest.mark.parametrize("launcher", ["torchrun", "tf_config"])
@pytest.mark.parametrize("variant, expected", [("die", "exit status"), ("hang", "timed out after 20 s")])
def test_a_worker_that_dies_or_hangs_is_a_failed_row_and_leaves_no_process(tmp_path, monkeypatch, launcher,
                                                                          variant, expected):
    if launcher == "torchrun":
        _engine("torch")
    monkeypatch.setenv("FAULTY_PID_DIR", str(tmp_path))
    impl = Implementation(name="faulty-dp", module="tests.faulty_distributed", variants=(variant,), requires=(),
                          extra=None, kernels="numpy", distributed=Distributed(module="tests.faulty_distributed", variant=variant,
                                                              launcher=launcher))
    result = run_one(impl, variant, small_config(workers=2), timeout_s=20)
    assert result.status == "failed" and expected in result.error, result.error
    if variant == "die":
        assert "worker 1" in result.error  # the one that died, not the one left waiting
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2  # both workers had started
    assert not [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_compare_workers_2_shows_the_distributed_rows_matching_with_scaling(cli, tmp_path):
    for framework in ENGINES:
        _engine(framework)
    proc = cli("compare.py", "--frameworks", "numpy,torch,tensorflow", "--workers", "2", "--dtype", "float64",
               "--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "30", "--lr", "1e-3",
               "--warmup", "2", "--rounds", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for column in ("x 1 worker", "comm %", "efficiency"):
        assert column in proc.stdout
    assert "all 5 runs match" in proc.stdout
    assert "scaling torch/ddp/cpu" in proc.stdout and "scaling tensorflow/multiworker/cpu" in proc.stdout
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert sorted((r["framework"], r["world_size"]) for r in runs) == [
        ("numpy", 1), ("tensorflow", 1), ("tensorflow", 2), ("torch", 1), ("torch", 2)]


@pytest.mark.parametrize("args, message", [
    (["--workers", "3"], "--workers 3 must divide --batch N=64"),
    (["--workers", "2", "--sweep"], "--workers cannot be combined with --sweep"),
])
def test_compare_refuses_bad_worker_counts_in_one_line(cli, args, message):
    proc = cli("compare.py", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("framework", ENGINES)
def test_registry_names_each_engine_module_and_its_variant(framework):
    impl = _engine(framework)
    module = __import__(impl.distributed.module, fromlist=["BUILDERS"])
    assert list(module.BUILDERS) == [impl.distributed.variant] and callable(module.build)
