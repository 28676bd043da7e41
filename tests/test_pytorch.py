"""Every PyTorch variant computes the reference's losses on every step of the default run."""

import dataclasses
import importlib

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import FACTOR
from common.problem import make_problem
from common.runner import apply_verdict
from implementations import REGISTRY
from tests.conftest import small_config, train

torch = pytest.importorskip("torch", reason="torch not installed: pip install -e '.[torch]'")
pytorch = importlib.import_module("implementations.pytorch")


# torch.compile recompiles per dtype (seconds each): its float64 case is in the slow tier
@pytest.mark.parametrize("variant, dtype", [
    pytest.param(v, d, marks=[pytest.mark.slow] if (v, d) == ("compile", "float64") else [])
    for v in REGISTRY["torch"].variants for d in ("float64", "float32")])
def test_variant_matches_reference_on_every_step(variant, dtype, references):
    cfg = small_config(dtype=dtype)
    result = apply_verdict(train("torch", cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps == len(result.step_times_s)
    assert result.x_noise <= FACTOR[dtype] and result.weights_x_noise <= FACTOR[dtype]  # losses and weights
    assert result.losses[-1] < 0.1 * result.losses[0]  # it really trained
    assert result.setup_s >= result.step_times_s[0] > 0
    assert result.versions["torch"] == torch.__version__ and result.threads == cfg.threads


@pytest.mark.parametrize("variant", ["tensors", "autograd", "module"])
def test_training_never_writes_into_the_shared_problem(variant):
    cfg = RunConfig(steps=3)
    problem = make_problem(cfg)
    before = [a.copy() for a in problem]
    train("torch", cfg, variant, problem)
    assert all(np.array_equal(a, b) for a, b in zip(before, problem))


def test_gpu_without_cuda_is_a_skip_not_a_crash():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the skip path cannot be exercised")
    cfg = dataclasses.replace(RunConfig(steps=2), device="gpu")
    with pytest.raises(NotImplementedError, match="no CUDA device"):
        pytorch.build(cfg, make_problem(cfg), "autograd")
