"""Fair measurement: FLOP counts, the roofline, rounds, the sweep, and the report files."""

import csv
import json
import math
from pathlib import Path

import pytest

from common.config import RunConfig
from common.figures import Figures, figures
from common.report import CSV_FIELDS
from common.result import RunResult, merge_rounds
from common.roofline import achieved_gflops, floor_s, numpy_square, peak_rate
from common.sweep import LADDER, crossovers, gpu_wins, ladder_configs, overall_crossover
from common.timing import step_stats
from common.report import gpu_line, timer_line

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_flops_per_step_counts_the_five_matmuls():
    # BASELINES.md: 25.98 MFLOP at the lecture's size
    assert RunConfig().flops_per_step() == 25_984_000
    n, d, h, o = 3, 5, 7, 11
    cfg = RunConfig(batch=n, d_in=d, hidden=h, d_out=o)
    matmuls = [(n, d, h), (n, h, o), (h, n, o), (n, o, h), (d, n, h)]  # x@w1, h@w2, grad_w2, grad_h, grad_w1
    assert cfg.flops_per_step() == sum(2 * a * b * c for a, b, c in matmuls)


def test_roofline_math():
    cfg = RunConfig()
    assert floor_s(cfg, peak_gflops=100.0) == pytest.approx(25_984_000 / 100e9)
    assert achieved_gflops(cfg, median_s=0.5e-3) == pytest.approx(25_984_000 / 0.5e-3 / 1e9)
    result = RunResult("x", "y", "cpu", "float32", config=cfg.to_dict(), losses=[1.0] * 13,
                       step_times_s=[1.0] + [0.5e-3] * 12)
    (row,) = figures([result], peak_gflops=100.0)
    assert row.median_s == 0.5e-3
    assert row.x_floor == pytest.approx(0.5e-3 / floor_s(cfg, 100.0))
    assert row.pct_peak == pytest.approx(100 * row.gflops / 100.0)
    assert row.x_fastest == 1.0


def test_peak_measurement_is_a_rate():
    peak = peak_rate(numpy_square(128, "float32"), 128, repeats=2)
    assert math.isfinite(peak) and peak > 0


def run(status="ok", losses=(3.0, 2.0), times=(9.0, 1.0, 2.0, 3.0), setup=1.0, err=1e-8):
    return RunResult("torch", "autograd", "cpu", "float32", config={"warmup": 1}, losses=list(losses),
                     step_times_s=list(times), setup_s=setup, status=status, max_rel_err=err, x_noise=err * 1e8,
                     worst_step=2)


def test_rounds_merge_to_the_worst_verdict_and_pool_every_rounds_steps():
    merged = merge_rounds([run(times=(9, 9, 1, 2)), run(times=(9, 9, 3, 4), setup=3.0, err=2e-8), run(setup=2.0)])
    assert merged.status == "ok" and merged.max_rel_err == 2e-8 and merged.x_noise == 2.0 and merged.setup_s == 2.0
    assert len(merged.round_step_times_s) == 3
    stats = step_stats(merged.step_times_s, 1, merged.round_step_times_s)
    assert stats.n == 6 and stats.median_s == 2.5  # the pooled steps 1, 2, 3, 4, 2, 3
    assert merge_rounds([run(), run(status="mismatch")]).status == "mismatch"
    assert merge_rounds([run(), run(status="failed")]).status == "failed"


def test_rounds_whose_losses_differ_are_named():
    merged = merge_rounds([run(), run(losses=(3.0, 2.0000001))])
    assert "round(s) 2 differ from round 1's" in merged.note


def test_ladder_goes_from_the_lecture_to_compute_bound_sizes():
    configs = ladder_configs(RunConfig(), steps=30)
    assert len(configs) >= 5 and LADDER[0] == (64, 1000, 100, 10)
    flops = [c.flops_per_step() for c in configs]
    assert flops == sorted(flops) and flops[-1] > 1000 * flops[0]
    assert configs[0].lr == RunConfig().lr and all(c.steps == 30 for c in configs)


def figures_row(framework="t", device="cpu", **numbers) -> Figures:
    return Figures(framework=framework, variant="v", label="v", name=f"{framework}/v/{device}/float32", device=device,
                   dtype="float32", status="ok", **numbers)


def point(framework, size, median, x_floor, device="cpu"):
    """A sweep point of the given size (its batch; FLOPs grow with it)."""
    cfg = RunConfig(batch=size, d_in=1, hidden=1, d_out=1)
    return figures_row(framework, device, config=cfg, median_s=median, x_floor=x_floor)


def test_crossover_is_the_first_size_within_twice_the_floor():
    points = [point("a", 1, 1.0, 5.0), point("a", 10, 1.0, 1.9), point("a", 100, 1.0, 1.2),
              point("b", 1, 1.0, 1.5), point("b", 10, 1.0, 3.0), point("b", 100, 1.0, 1.1)]
    found = crossovers(points)
    assert found["a/v/cpu"].batch == 10 and found["b/v/cpu"].batch == 1
    assert overall_crossover(points).batch == 100  # b is over 2x at size 10


def test_gpu_wins_from_the_first_size_where_it_is_faster():
    points = [point("t", 1, 1.0, 1, "cpu"), point("t", 1, 2.0, 1, "gpu"),
              point("t", 10, 4.0, 1, "cpu"), point("t", 10, 1.0, 1, "gpu")]
    (win, speedup), = gpu_wins(points).values()
    assert win.batch == 10 and speedup == 4.0


def test_gpu_line_without_a_gpu_says_so_in_one_line():
    rows = [figures_row(median_s=1.0)]
    assert gpu_line(rows, ["cpu", "gpu"]).startswith("CPU vs GPU: no GPU run here")
    assert gpu_line(rows, ["cpu"]) is None


def test_timer_line_warns_above_one_percent():
    rows = [figures_row(median_s=1e-4)]
    assert "WARNING" not in timer_line(rows, {"timer_overhead_s": 0.5e-6})
    assert "WARNING" in timer_line(rows, {"timer_overhead_s": 2e-6})


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    import matplotlib.image

    assert matplotlib.image.imread(str(path)).shape[0] > 100


def test_out_dir_holds_json_csv_plots_and_report(cli, tmp_path):
    proc = cli("compare.py", "--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "30",
               "--lr", "1e-3", "--frameworks", "numpy", "--rounds", "2", "--warmup", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    m = doc["measurement"]
    assert m["rounds"] == 2 and m["peak_gflops"] > 0 and m["timer_overhead_s"] > 0 and m["threads"] >= 1
    assert {"cpu", "cpu_model", "cores", "gpu", "python"} <= doc["machine"].keys()
    if Path("/proc/cpuinfo").exists():  # the CPU's generation, which its marketing name may not tell
        assert " family " in doc["machine"]["cpu_model"] and doc["machine"]["cpu_model"] in (tmp_path / "report.md").read_text()
    run_ = doc["runs"][0]
    assert len(run_["round_step_times_s"]) == 2 and run_["versions"]["numpy"]
    with open(tmp_path / "results.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        rows = list(reader)
    assert len(rows) == 1 and rows[0]["framework"] == "numpy" and float(rows[0]["x_floor"]) > 0
    assert rows[0]["rounds"] == "2" and rows[0]["timed_steps"] == str(2 * (30 - 1 - 2))
    for name in ("loss_curves.png", "step_time.png"):
        assert_png(tmp_path / name)
    report = (tmp_path / "report.md").read_text()
    assert "![loss_curves.png](loss_curves.png)" in report and "| numpy | manual |" in report
    assert "] 1/2 done, running numpy/manual/cpu/float32 round 2/2 ... ok" in proc.stderr  # the progress bar


@pytest.mark.slow
def test_sweep_writes_its_plot_and_names_the_crossover(cli, tmp_path):
    proc = cli("compare.py", "--sweep", "--frameworks", "numpy", "--sweep-steps", "4", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_png(tmp_path / "sweep.png")
    assert_png(tmp_path / "sweep_memory.png")
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == len(LADDER)
    assert all(float(row["peak_mb"]) >= float(row["import_mb"]) > 0 for row in rows)
    assert "memory at 64x1000x100x10: estimate" in proc.stdout
    assert "crossover:" in proc.stdout and "numpy/manual/cpu:" in proc.stdout


def test_rounds_pool_their_harness_pairs_and_the_row_takes_the_median_pair():
    rounds = [run(), run(), run()]
    for r, costs in zip(rounds, ([0.09, 0.10, 0.11], [-0.02, 0.0, 0.01], [0.02, 0.03, 0.04])):
        r.harness_pair_costs, r.harness_cost = costs, costs[1]
    merged = merge_rounds(rounds)
    # the middle round's median would be 0.03; the median of the nine pairs is 0.03 too, but from all nine
    assert merged.harness_pair_costs == [0.09, 0.10, 0.11, -0.02, 0.0, 0.01, 0.02, 0.03, 0.04]
    assert merged.harness_cost == 0.03 and merged.round_harness_cost == [0.10, 0.0, 0.03]
    rounds[2].harness_pair_costs = [0.20, 0.30, 0.40]  # a round far off moves the pooled median to a neighbour
    assert merge_rounds(rounds).harness_cost == 0.10


def test_a_harness_cost_is_said_with_its_interval_over_its_pairs_and_whether_that_holds_zero():
    from common.report import table_notes

    costly, free = run(), run()
    costly.harness_pair_costs = [0.06, 0.07, 0.08, 0.09, 0.10, 0.07, 0.08, 0.09]
    free.harness_pair_costs = [-0.06, 0.05, 0.04, -0.03, 0.06, -0.05, 0.07, 0.05]
    costly.harness_cost, free.harness_cost = 0.08, 0.045
    costly.harness_why = "its steps are timed in blocks"  # the registry's word, carried by the result
    rows = figures([costly, free], peak_gflops=100.0)
    assert 0.06 <= rows[0].harness_low < 0.08 < rows[0].harness_high <= 0.10
    assert rows[1].harness_low <= 0 <= rows[1].harness_high
    costly_note, free_note = (n for n in table_notes(rows) if "per-step measurement costs" in n)
    assert "costs 8.0% of its step (95% CI +" in costly_note and "holds 0" not in costly_note
    assert "which holds 0" in free_note
    assert costly_note.endswith("; its steps are timed in blocks") and "timed in blocks" not in free_note


def test_the_registry_says_why_a_harness_cost_is_what_it_is_by_variant():
    from implementations import ASYNC_NOTE, FIT_NOTE, REGISTRY

    assert {REGISTRY["jax"].harness_note(v) for v in REGISTRY["jax"].variants} == {ASYNC_NOTE}
    keras = REGISTRY["keras-jax"]
    assert keras.harness_note("fit") == FIT_NOTE and keras.harness_note("train_on_batch") == ""


def test_a_run_whose_median_step_reads_0_s_is_named_and_quoted_at_no_speed():
    from common.report import table_notes

    untimed = run()
    untimed.step_times_s = [0.5] + [0.0] * 20 + [1e-3] * 5  # most laps 0: a clock that did not time steps apart
    row, = figures([untimed], peak_gflops=100.0)
    assert row.median_s is None and row.steps_per_s is None and row.gflops is None
    assert any("median of its 24 timed steps is 0 s" in n for n in table_notes([row]))
