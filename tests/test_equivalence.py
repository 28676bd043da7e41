"""The equivalence check: every correct implementation is ok at every step and in its final
weights, every deliberately wrong copy of the reference is a mismatch, late steps included."""

import dataclasses
import math

import numpy as np
import pytest

from common import noise
from common.config import RunConfig
from common.equivalence import FACTOR, judge, x_noise_per_step
from common.problem import make_problem
from common.runner import apply_verdict
from implementations import REGISTRY, in_process_cases
from tests.conftest import train
from tests.mutants import MUTANTS, mutant_run

DTYPES = ["float32", "float64"]


@pytest.fixture(scope="module", params=DTYPES)
def lecture(request):
    """The lecture's run (500 steps) in one dtype: its problem and its reference with the noise."""
    cfg = RunConfig(dtype=request.param)
    problem = make_problem(cfg)
    return cfg, problem, noise.measure(cfg, problem)


def test_the_reference_matches_itself_exactly(lecture):
    cfg, _, reference = lecture
    run = reference.run
    verdict = judge(run.losses, reference, cfg.dtype, (run.w1, run.w2))
    assert verdict.status == "ok" and verdict.x_noise == 0.0 and verdict.weights_x_noise == 0.0


def test_the_noise_grows_as_training_goes_on_and_costs_little(lecture):
    cfg, _, reference = lecture
    relative = reference.noise / np.abs(reference.losses)
    assert relative[-1] > 100 * relative[0] > 0  # rounding noise accumulates
    assert 0 < reference.weights_noise < 1e-4 and reference.cost_s < 30


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_wrong_copy_is_a_mismatch_in_the_dtypes_it_must_be(lecture, mutant):
    cfg, problem, reference = lecture
    if cfg.dtype not in mutant.must_catch:
        pytest.skip(f"{cfg.dtype} rounding noise hides it (docs/equivalence.md: the measured ratios)")
    run = mutant_run(cfg, problem, mutant)
    verdict = judge(run.losses, reference, cfg.dtype, (run.w1, run.w2))
    assert verdict.status == "mismatch", (verdict, mutant.name)


def test_a_change_at_the_last_step_only_shows_in_the_weights(lecture):
    cfg, problem, reference = lecture
    if cfg.dtype != "float64":
        pytest.skip("float32 weights carry more noise than one step's change")
    (last,) = [m for m in MUTANTS if m.name == "lr x 1.001 at step 500 only"]
    run = mutant_run(cfg, problem, last)
    assert judge(run.losses, reference, cfg.dtype).status == "ok"  # the losses cannot see it
    verdict = judge(run.losses, reference, cfg.dtype, (run.w1, run.w2))
    assert verdict.status == "mismatch" and "final weights" in verdict.error


# Every variant that can run in this process, from the registry (what cannot says why in its entry)
IN_PROCESS = in_process_cases()


@pytest.mark.slow
@pytest.mark.parametrize("name, variant", IN_PROCESS, ids=[f"{n}/{v}" for n, v in IN_PROCESS])
def test_every_real_implementation_is_ok_at_every_step_of_the_same_run(lecture, name, variant):
    # The configuration of the wrong copies above: what passes them must pass here.
    cfg, _, reference = lecture
    result = apply_verdict(train(name, cfg, variant), reference)
    if cfg.dtype != "float32" and REGISTRY[name].float32_only:  # its registry entry says why it cannot
        assert (result.status, result.error) == ("skipped", REGISTRY[name].float32_only)
        return
    assert result.status == "ok", result.error
    assert result.x_noise <= FACTOR[cfg.dtype] and result.weights_x_noise <= FACTOR[cfg.dtype]


def test_a_dip_of_the_ensemble_is_filled_by_its_neighbours():
    ref = np.full(101, 2.0)
    deviation = np.full(101, 1e-6)
    deviation[50] = 1e-12  # every reordered run crossed zero here
    envelope = noise.running_envelope(deviation, ref)
    assert envelope[50] == pytest.approx(1e-6)


def test_the_error_is_measured_in_noise_units_per_step():
    reference = noise.Reference(noise.ReferenceRun([4.0, 2.0], None, None), np.array([0.0, 0.5]), 0.0, 0.0)
    ratios = x_noise_per_step([4.0, 3.0], reference, "float64")
    assert ratios[0] == 0.0 and ratios[1] == pytest.approx(2.0, rel=1e-12)


def test_diverged_run_is_never_a_match_even_when_the_reference_diverges_too():
    cfg = dataclasses.replace(RunConfig(), lr=1.0, steps=20)
    reference = noise.measure(cfg, make_problem(cfg))
    verdict = judge(reference.losses, reference, cfg.dtype)
    assert verdict.status == "diverged" and verdict.worst_step == len(reference.losses)
    assert f"step {len(reference.losses)}" in verdict.error


def test_short_run_is_a_mismatch():
    reference = noise.Reference(noise.ReferenceRun([1.0, 0.5, 0.25], None, None), np.zeros(3), 0.0, 0.0)
    assert judge([1.0, 0.5], reference, "float64").status == "mismatch"
    assert judge([], noise.Reference(noise.ReferenceRun([], None, None), np.zeros(0), 0.0, 0.0),
                 "float64").status == "mismatch"


def test_reference_divergence_alone_is_a_mismatch():
    reference = noise.Reference(noise.ReferenceRun([1.0, math.inf], None, None), np.zeros(2), 0.0, 0.0)
    verdict = judge([1.0, 0.5], reference, "float64")
    assert verdict.status == "mismatch" and verdict.worst_step == 2
