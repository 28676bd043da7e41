"""Property-based: over small random sizes, seeds, learning rates and step counts, every
implementation that can run in this process matches the reference in float64.

Not here, and why: torch's `compile` recompiles for every new shape (seconds each; the fixed-size
tests cover it), and Keras on backends other than this process's (one backend per process;
tests/test_keras.py runs each in its own process at the lecture's size).
"""

import importlib
import math
from importlib.util import find_spec

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from common.config import RunConfig  # noqa: E402
from common.problem import make_problem  # noqa: E402
from common.reference import reference_losses  # noqa: E402
from common.runner import apply_verdict  # noqa: E402

CASES = [("common.reference", "manual", "numpy")]
CASES += [("implementations.pytorch", v, "torch") for v in ("tensors", "autograd", "module")]
CASES += [("implementations.tensorflow_graphs", v, "tensorflow")
          for v in ("feed", "variables", "optimizer", "function", "xla")]
CASES += [("implementations.onnx_runtime", v, "onnxruntime") for v in ("step", "loop")]
CASES += [("implementations.keras_api", v, "keras") for v in ("fit", "train_on_batch")]


@pytest.mark.parametrize("module,variant,package", CASES, ids=[f"{m.split('.')[-1]}-{v}" for m, v, _ in CASES])
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 8), d_in=st.integers(1, 12), hidden=st.integers(1, 8), d_out=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), lr=st.floats(1e-4, 3e-2), steps=st.integers(1, 12))
def test_every_implementation_matches_the_reference_in_float64(module, variant, package, batch, d_in, hidden,
                                                               d_out, seed, lr, steps):
    if find_spec(package) is None:
        pytest.skip(f"{package} not installed")
    cfg = RunConfig(batch=batch, d_in=d_in, hidden=hidden, d_out=d_out, seed=seed, lr=lr, steps=steps,
                    dtype="float64", warmup=0)
    problem = make_problem(cfg)
    reference = reference_losses(cfg, problem)
    assume(len(reference) == steps and all(math.isfinite(v) for v in reference))  # a diverging draw proves nothing
    impl = importlib.import_module(module)
    result = apply_verdict(impl.train(cfg, problem, variant), reference)
    assert result.status == "ok", (result.error, result.losses, reference)
