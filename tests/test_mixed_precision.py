"""bf16-mixed: the oracle rounds where autocast does, the derived bound holds, the noise ensemble sits
inside it, every real bf16 run matches, every run that cannot says why, and the wrong copies are caught."""

import math

import numpy as np
import pytest

from common import bf16_bound, noise
from common.config import RunConfig
from common.equivalence import FACTOR, judge
from common.problem import make_problem
from common.reference import bf16_matmul, reference_run, to_bf16
from common.runner import apply_verdict
from implementations import REGISTRY
from tests.bf16_mutants import BF16_MUTANTS, bf16_mutant_run
from tests.conftest import train

BF16 = RunConfig(precision="bf16-mixed")


def test_to_bf16_keeps_8_significant_bits_rounding_to_nearest_even():
    assert to_bf16(np.float32(1 + 2 ** -8)) == 1.0  # a tie: to the even neighbour
    assert to_bf16(np.float32(1 + 3 * 2 ** -8)) == 1 + 2 ** -6  # a tie the other way
    assert to_bf16(np.float32(1 + 2 ** -7)) == 1 + 2 ** -7  # representable: unchanged
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    rel = np.abs(to_bf16(values) - values) / np.abs(values)
    assert rel.max() <= 2 ** -8 and rel.max() > 2 ** -9  # within u_b, and using it


@pytest.mark.parametrize("k", [10, 100, 1000])
def test_an_autocast_matmul_is_within_the_derived_bound_of_the_exact_product(k):
    rng = np.random.default_rng(k)
    a, b = rng.standard_normal((64, k)).astype(np.float32), rng.standard_normal((k, 30)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    error = np.abs(bf16_matmul(a, b) - exact)
    bound = bf16_bound.gamma(k) * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(error <= bound)
    assert error.max() > 1e-3 * bound.max()  # a bound that is not vacuous


def test_the_oracle_is_not_the_float32_run_and_plateaus_at_its_rounding_floor():
    problem = make_problem(BF16)
    bf16 = reference_run(BF16, problem)
    f32 = reference_run(RunConfig(), problem)
    assert bf16.losses[0] != f32.losses[0] and abs(bf16.losses[0] / f32.losses[0] - 1) < 2 ** -7
    # float32 trains to ~4e-5; bf16's forward cannot resolve y_pred below its rounding (docs/mixed-precision.md)
    assert f32.losses[-1] < 1e-3 < 100 < bf16.losses[-1]
    assert bf16.w1.dtype == np.float32  # master weights stay float32


@pytest.fixture(scope="module")
def lecture():
    problem = make_problem(BF16)
    return problem, noise.measure(BF16, problem)


def test_the_noise_ensemble_sits_inside_both_derived_bounds(lecture):
    problem, reference = lecture
    for model in ("worst", "rms"):
        found = bf16_bound.bounds(problem.x, problem.y, problem.w1, problem.w2, BF16.lr, BF16.steps, model)
        inside = bf16_bound.ensemble_inside(reference.deviation, reference.losses, found)
        assert inside["min_bound_over_noise"] >= 1, (model, inside)


@pytest.mark.parametrize("mutant", [m for m in BF16_MUTANTS if m.must_catch], ids=lambda m: m.name)
def test_every_wrong_bf16_copy_that_must_be_caught_is_a_mismatch(lecture, mutant):
    problem, reference = lecture
    run = bf16_mutant_run(BF16, problem, mutant)
    assert judge(run.losses, reference, "bf16-mixed", (run.w1, run.w2)).status == "mismatch"


def test_a_mutant_with_no_change_is_the_oracle_bit_for_bit(lecture):
    problem, reference = lecture
    run = bf16_mutant_run(BF16, problem, BF16_MUTANTS[0]._replace(masters_bf16=False))
    assert run.losses == reference.losses and np.array_equal(run.w1, reference.run.w1)


BF16_CASES = [(impl.name, v) for impl in REGISTRY.values() for v in impl.bf16 if not impl.why_not_in_process(v)
              and v != "compile"]


@pytest.mark.parametrize("name, variant", BF16_CASES, ids=[f"{n}/{v}" for n, v in BF16_CASES])
def test_every_bf16_run_in_this_process_matches_at_every_step(lecture, name, variant):
    _, reference = lecture
    result = apply_verdict(train(name, BF16, variant), reference)
    assert result.dtype == "bf16-mixed" and result.status == "ok", result.error
    assert result.x_noise <= FACTOR["bf16-mixed"] and result.weights_x_noise <= FACTOR["bf16-mixed"]


NO_BF16 = [(impl.name, v) for impl in REGISTRY.values() for v in impl.variants if v not in impl.bf16]


@pytest.mark.parametrize("name, variant", NO_BF16, ids=[f"{n}/{v}" for n, v in NO_BF16])
def test_every_variant_without_bf16_is_a_skipped_row_saying_why(name, variant):
    from common.runner import run_guarded

    impl = REGISTRY[name]
    result = run_guarded(BF16, impl, variant, lambda *_: pytest.fail("built a run it should refuse"))
    assert (result.status, result.error) == ("skipped", impl.why_not_bf16(variant))
    assert len(result.error) > 40 and result.dtype == "bf16-mixed"


def test_the_frameworks_the_issue_names_have_bf16_runs_and_onnx_says_why():
    for name in ("torch", "jax", "keras-tensorflow", "keras-jax", "keras-torch"):
        assert REGISTRY[name].bf16, name
    assert "no bfloat16 MatMul kernel" in REGISTRY["onnx"].why_not_bf16("step")
    assert all(set(impl.bf16) <= set(impl.variants) for impl in REGISTRY.values())


def test_the_factor_leaves_3x_over_the_correct_runs_the_docs_record():
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).parent.parent / "docs/mixed-precision/margins.json").read_text())
    correct = [r for seed in doc["seeds"] for r in seed["correct"]]
    assert len(doc["seeds"]) >= 5 and correct
    worst = max(max(r["x_noise"], r["weights_x_noise"]) for r in correct)
    assert 3 * worst <= FACTOR["bf16-mixed"] and math.isfinite(worst)
    caught = [r for seed in doc["seeds"] for r in seed["wrong"] if r["must_catch"]]
    assert all(max(r["x_noise"], r["weights_x_noise"] or 0) > FACTOR["bf16-mixed"] for r in caught)


@pytest.mark.slow
def test_the_bf16_runs_that_need_their_own_process_match_through_compare(cli, tmp_path):
    """Keras on jax and on torch (one backend per process) and torch.compile, as compare.py runs them."""
    import json

    for name in ("torch", "keras-jax", "keras-torch"):
        if REGISTRY[name].missing():
            pytest.skip(f"{name} not installed: pip install -e '.[{REGISTRY[name].extra}]'")
    proc = cli("compare.py", "--precision", "bf16-mixed", "--frameworks", "torch,keras-jax,keras-torch",
               "--variants", "compile,train_on_batch", "--rounds", "1", "--out", str(tmp_path), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert {(r["framework"], r["variant"]) for r in runs} == {
        ("torch", "compile"), ("keras-jax", "train_on_batch"), ("keras-torch", "train_on_batch")}
    for r in runs:
        assert r["dtype"] == "bf16-mixed" and r["status"] == "ok" and r["x_noise"] <= FACTOR["bf16-mixed"], r["error"]
