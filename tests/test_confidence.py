"""The intervals on synthetic step times whose true median is known."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

pytest.importorskip("scipy")

from common.confidence import blocks, indistinguishable, median_interval, ratio_interval  # noqa: E402
from common.figures import figures  # noqa: E402
from common.report import fastest_line  # noqa: E402
from common.result import RunResult  # noqa: E402
from tests.conftest import small_config  # noqa: E402


def draw(rng, median=1.0, rounds=3, steps=200, rho=0.6, spread=0.1) -> list[list[float]]:
    """Step times like a machine's: log-normal around `median`, each step correlated with the last
    (AR(1), rho), so that neighbouring steps are not independent draws."""
    out = []
    for _ in range(rounds):
        z = np.empty(steps)
        z[0] = rng.standard_normal()
        shocks = rng.standard_normal(steps) * np.sqrt(1 - rho**2)
        for t in range(1, steps):
            z[t] = rho * z[t - 1] + shocks[t]
        out.append(list(median * np.exp(spread * z)))  # z is N(0, 1) at every step: the median is `median`
    return out


@pytest.mark.slow
def test_the_95_percent_interval_covers_the_true_median_in_at_least_90_percent_of_200_draws():
    rng = np.random.default_rng(2026)
    covered = 0
    for i in range(200):
        low, high = median_interval(draw(rng), seed=i)
        covered += low <= 1.0 <= high
    assert covered >= 180, f"covered {covered} of 200"


@pytest.mark.slow
def test_two_runs_from_one_distribution_cannot_be_told_apart_and_20_percent_apart_can():
    rng = np.random.default_rng(7)
    same = sum(indistinguishable(ratio_interval(draw(rng), draw(rng), seed=i)) for i in range(20))
    apart = [ratio_interval(draw(rng, median=1.2), draw(rng), seed=i) for i in range(20)]
    assert same >= 17  # a 95% interval misses 1 in 20 when nothing differs
    assert not any(indistinguishable(interval) for interval in apart)
    assert all(low > 1.1 and high < 1.3 for low, high in apart)


def test_blocks_keep_neighbouring_steps_together_and_every_step():
    rounds = [list(range(100)), list(range(100, 150))]
    parts = blocks(rounds, block=25)
    assert sum(len(p) for p in parts) == 150
    assert all(np.all(np.diff(p) == 1) for p in parts)  # contiguous runs of steps
    assert min(len(p) for p in parts) == 12  # the short round sets the block: 4 blocks at least


def test_a_single_block_gives_no_interval():
    assert median_interval([[1.0]]) is None


def test_the_table_names_the_group_that_cannot_be_told_from_the_fastest():
    cfg = small_config(steps=200, warmup=0)
    rng = np.random.default_rng(3)

    def run(name, median):
        rounds = draw(rng, median=median, steps=200)
        return RunResult(name, "v", "cpu", cfg.dtype, config=cfg.to_dict(), losses=[1.0] * 200,
                         step_times_s=rounds[0], round_step_times_s=rounds)

    rows = figures([run("a", 1e-3), run("b", 1.0005e-3), run("c", 1.3e-3)], peak_gflops=None)
    by_name = {f.framework: f for f in rows}
    assert by_name["b"].same_as_fastest or by_name["a"].same_as_fastest
    assert not by_name["c"].same_as_fastest and by_name["c"].x_fastest_low > 1.2
    line = fastest_line(rows)
    assert line.startswith("fastest: ") and "indistinguishable from it" in line and "c/v" not in line


def test_the_suite_has_one_median_and_numpys_is_the_same():
    from common.timing import median

    for values in ([3.0, 1.0, 2.0], [4.0, 1.0, 3.0, 2.0], [0.5], [2.0, 2.0, 7.0, 1.0, 9.0, 3.0]):
        assert median(values) == float(np.median(values)) == statistics.median(values)
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5  # interpolated, not the upper (3.0) or lower (2.0) middle
