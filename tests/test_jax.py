"""JAX, the fifth way: every variant computes the reference's losses, fed any way, bounded in threads."""

import dataclasses
import importlib
import json
from importlib.util import find_spec

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import FACTOR
from common.problem import make_problem
from common.runner import apply_verdict
from implementations import REGISTRY
from tests.conftest import run_cli, small_config, train

pytest.importorskip("jax", reason="jax not installed: pip install -e '.[jax]'")
jax_transforms = importlib.import_module("implementations.jax_transforms")  # sets x64 before any array
jax = jax_transforms.jax
HAS_FLAX = find_spec("flax") is not None and find_spec("optax") is not None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", REGISTRY["jax"].variants)
def test_variant_matches_reference_on_every_step(variant, dtype, references):
    if variant == "flax" and not HAS_FLAX:
        pytest.skip("flax and optax not installed: pip install -e '.[jax]'")
    cfg = small_config(dtype=dtype)
    result = apply_verdict(train("jax", cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps == len(result.step_times_s)
    assert result.x_noise <= FACTOR[dtype] and result.weights_x_noise <= FACTOR[dtype]
    assert result.losses[-1] < 0.1 * result.losses[0]  # it really trained
    assert result.versions["jax"] == jax.__version__


@pytest.mark.parametrize("feed", ["resident", "copy", "prefetch", "disk"])
@pytest.mark.parametrize("variant", REGISTRY["jax"].minibatch)
def test_minibatches_in_the_shared_order_match_the_reference(variant, feed, references):
    if variant == "flax" and not HAS_FLAX:
        pytest.skip("flax and optax not installed: pip install -e '.[jax]'")
    cfg = small_config(samples=40, epochs=2, feed=feed, dtype="float64")
    result = apply_verdict(train("jax", cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps == 2 * (40 // cfg.batch)


def test_scan_is_refused_on_minibatches_with_the_reason():
    result = train("jax", small_config(samples=40), "scan")
    assert result.status == "skipped" and "lecture's one batch" in result.error


def test_training_never_writes_into_the_shared_problem():
    cfg = RunConfig(steps=3)
    problem = make_problem(cfg)
    before = [a.copy() for a in problem]
    for variant in ("manual", "grad", "scan"):
        train("jax", cfg, variant, problem)
    assert all(np.array_equal(a, b) for a, b in zip(before, problem))


def test_threads_are_bounded_by_cpu_affinity_and_the_note_says_so(tmp_path):
    out = run_cli("-m", "implementations.jax_transforms", "--variant", "grad", "--steps", "20", "--threads", "1",
                  "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "ok" and "bounded to 1 core(s) by CPU affinity" in result["note"]


def test_gpu_without_cuda_is_a_skip_not_a_crash():
    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    if has_gpu:
        pytest.skip("this machine has a GPU; the skip path cannot be exercised")
    cfg = dataclasses.replace(RunConfig(steps=2), device="gpu")
    with pytest.raises(NotImplementedError, match="no CUDA device"):
        jax_transforms.build(cfg, make_problem(cfg), "grad")
