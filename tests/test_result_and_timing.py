"""RunResult survives JSON exactly; the timer stops only after the device sync."""

import json
import math

import pytest

from common.result import RunResult
from common.timing import StepClock, Trainer, step_stats, time_steps


def test_run_result_json_round_trip_is_lossless():
    result = RunResult("torch", "autograd", "cpu", "float64", config={"steps": 3, "lr": 1e-6},
                       losses=[31519526.123456789, 0.1 + 0.2, 5e-324], step_times_s=[1e-3, 2.5e-4, 3.3e-4],
                       setup_s=0.25, threads=2, versions={"torch": "2.13.0"}, max_rel_err=1.5e-16, worst_step=2,
                       x_noise=0.37, weights_x_noise=0.21)
    back = RunResult.from_json(result.to_json())
    assert back == result
    assert back.losses[1] == 0.1 + 0.2  # bit-exact, not rounded for display


def test_the_trained_weights_are_held_for_the_verdict_but_never_written():
    import numpy as np

    result = RunResult("numpy", "manual", "cpu", "float64", final_weights=(np.ones(3), np.zeros(2)))
    assert "final_weights" not in json.loads(result.to_json())
    assert RunResult.from_json(result.to_json()).final_weights is None


def test_non_finite_losses_round_trip_through_strict_json():
    result = RunResult("numpy", "manual", "cpu", "float32", losses=[1.0, math.inf, -math.inf, math.nan],
                       status="diverged", error="diverged at step 2")
    text = result.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = RunResult.from_json(text)
    assert back.losses[:3] == [1.0, math.inf, -math.inf] and math.isnan(back.losses[3])


def test_timer_calls_sync_before_stopping_the_clock_on_every_step():
    events = []

    def step():
        events.append("step")
        return 1.0

    def sync():
        events.append("sync")

    clock = time_steps(Trainer(step, sync), 4)
    assert events == ["step", "sync"] * 4
    assert clock.losses == [1.0] * 4 and len(clock.times_s) == 4 and all(t >= 0 for t in clock.times_s)
    assert clock.data_times_s == []  # the lecture's batch: no data phase


def test_minibatch_steps_split_data_from_compute_and_sync_before_each_part():
    events = []
    batches = iter([("x1", "y1"), ("x2", "y2"), ("x3", "y3")])

    def feed():
        for batch in batches:
            events.append("data")
            yield batch

    def step(x, y):
        events.append(f"step {x} {y}")
        return 1.0

    clock = time_steps(Trainer(step, lambda: events.append("sync"), feed=feed), 3)
    assert events == [e for i in (1, 2, 3) for e in ("data", "sync", f"step x{i} y{i}", "sync")]
    assert len(clock.data_times_s) == len(clock.times_s) == 3
    assert all(0 <= d <= t for d, t in zip(clock.data_times_s, clock.times_s))


def test_timer_stops_at_the_first_non_finite_loss():
    values = iter([3.0, 2.0, math.nan, 1.0])
    clock = time_steps(Trainer(lambda: next(values)), 4)
    losses = clock.losses
    assert losses[:2] == [3.0, 2.0] and math.isnan(losses[2]) and len(losses) == len(clock.times_s) == 3


def test_step_stats_skip_step_one_and_the_warmup():
    times = [100.0, 50.0, 40.0] + [1.0, 2.0, 3.0, 4.0, 5.0]
    stats = step_stats(times, warmup=2)
    assert stats.n == 5 and stats.median_s == 3.0 and stats.min_s == 1.0 and stats.max_s == 5.0
    assert stats.iqr_s == 2.0  # quartiles 2 and 4, as numpy.quantile computes them
    assert step_stats([1.0, 2.0], warmup=1) is None


def _clock_reading(monkeypatch, readings_ns):
    """common.timing's clock, made to read `readings_ns` in turn."""
    import types

    import common.timing

    readings = iter(readings_ns)
    monkeypatch.setattr(common.timing, "time", types.SimpleNamespace(perf_counter_ns=lambda: next(readings)))


def test_marks_from_another_thread_become_laps_in_step_order_and_stop_at_a_non_finite_loss(monkeypatch):
    # Keras' thread pool may run step 1's callback before step 0's: the marks are put in step order
    marks = [(1, 2.0, 30), (0, 1.0, 30), (2, 3.0, 40), (4, 5.0, 60), (3, float("nan"), 50)]
    _clock_reading(monkeypatch, [0] + [ns for _, _, ns in marks])
    clock = StepClock()
    clock.start()
    for index, loss, _ in marks:
        assert clock.mark(index, loss) == (loss == loss)
    assert clock.losses == []  # nothing is a lap until the run is over
    clock.laps_from_marks()
    assert clock.losses[:3] == [1.0, 2.0, 3.0] and math.isnan(clock.losses[3]) and len(clock.losses) == 4
    # step 1 alone, then one block (steps 2-4, cut at the NaN) ending at the NaN step's mark, 50 ns;
    # step 0's own mark came no earlier than step 1's, so step 0 ended by 30 ns
    assert clock.times_s == pytest.approx([30e-9] + [20e-9 / 3] * 3)


def test_marks_taken_late_and_at_one_instant_give_no_zero_lap_and_add_up_to_the_run(monkeypatch):
    from common.timing import ASYNC_BLOCK

    steps = 1 + 2 * ASYNC_BLOCK + 5
    # a busy pool: every mark after step 1 taken at one of three instants, some out of order
    at_ns = [1000] + [5000] * ASYNC_BLOCK + [9000] * ASYNC_BLOCK + [7000] * 5
    order = list(range(steps))
    order[3], order[40] = order[40], order[3]
    _clock_reading(monkeypatch, [0] + [at_ns[i] for i in order])
    clock = StepClock()
    clock.start()
    for i in order:
        clock.mark(i, float(i))
    clock.laps_from_marks()
    assert clock.losses == [float(i) for i in range(steps)]
    assert min(clock.times_s) > 0
    assert sum(clock.times_s) == pytest.approx(7000e-9)  # the last step's mark ends the run
    assert len(set(clock.times_s[1:1 + ASYNC_BLOCK])) == 1  # a block's steps share its time
