"""Property-based: over small random sizes, seeds, learning rates and step counts, every
implementation that can run in this process matches the reference in float64. The cases come from
the registry; what cannot run here says why in its entry (Implementation.not_in_process).
"""

import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from common.config import RunConfig  # noqa: E402
from common.problem import make_problem  # noqa: E402
from common import noise  # noqa: E402
from common.runner import apply_verdict  # noqa: E402
from implementations import REGISTRY, in_process_cases  # noqa: E402
from tests.conftest import train  # noqa: E402

# float64 is these tests' dtype: an implementation that trains in float32 only is held to its skip instead
# (tests/test_mobile.py)
CASES = [(name, variant) for name, variant in in_process_cases() if not REGISTRY[name].float32_only]


@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" for n, v in CASES])
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 8), d_in=st.integers(1, 12), hidden=st.integers(1, 8), d_out=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), lr=st.floats(1e-4, 3e-2), steps=st.integers(1, 12))
def test_every_implementation_matches_the_reference_in_float64(name, variant, batch, d_in, hidden, d_out, seed,
                                                               lr, steps):
    cfg = RunConfig(batch=batch, d_in=d_in, hidden=hidden, d_out=d_out, seed=seed, lr=lr, steps=steps,
                    dtype="float64", warmup=0)
    problem = make_problem(cfg)
    reference = noise.measure(cfg, problem)
    losses = reference.losses
    assume(len(losses) == steps and all(math.isfinite(v) for v in losses))  # a diverging draw proves nothing
    result = apply_verdict(train(name, cfg, variant, problem), reference)
    assert result.status == "ok", (result.error, result.losses, losses)
