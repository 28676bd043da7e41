"""The step timer and its statistics. Implementations build; only this module holds the clock."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, NamedTuple

# IQR/median above this and the median is not a number to quote without a caveat.
NOISY_SPREAD = 0.10


def no_sync() -> None:
    """The sync hook for host-only work: the step has finished when it returns."""


class StepClock:
    """The harness's clock: each lap is one SGD step, ended only after the device sync.

    A lap's time runs from the previous lap (or start()), so whatever a framework does
    between steps (fetching the next batch, its callbacks) is counted, not hidden.
    """

    def __init__(self, sync: Callable[[], None] = no_sync):
        self.sync = sync
        self.losses: list[float] = []
        self.times_s: list[float] = []
        self.data_times_s: list[float] = []  # minibatch mode: the part of each lap spent getting the batch
        self._last_ns = 0
        self._marks: list[tuple[int, int, float]] = []  # (step index, ns, loss) from mark()

    def start(self) -> None:
        self._last_ns = time.perf_counter_ns()

    def data_done(self) -> None:
        """The batch is on the device: the lap so far was data time, the rest will be compute.

        Synchronises, so a device copy still in flight is counted as data, not as compute.
        """
        self.sync()
        self.data_times_s.append((time.perf_counter_ns() - self._last_ns) * 1e-9)

    def lap(self, loss) -> bool:
        """Record one finished step; False once the loss is NaN/inf (stop: the rest is noise)."""
        self.sync()
        value = float(loss)
        now_ns = time.perf_counter_ns()
        self.times_s.append((now_ns - self._last_ns) * 1e-9)
        self.losses.append(value)
        self._last_ns = now_ns
        return math.isfinite(value)

    def mark(self, index: int, loss) -> bool:
        """Record that step `index` has ended, from whichever thread saw its loss first (Keras'
        batch-end thread pool, which may run two steps' callbacks out of order, or late).
        laps_from_marks() turns the marks into laps once the run is over. False once the loss is
        NaN/inf.
        """
        self.sync()
        value = float(loss)
        self._marks.append((index, time.perf_counter_ns(), value))  # list.append is atomic under the GIL
        return math.isfinite(value)

    def laps_from_marks(self) -> None:
        """The marked steps as laps, in step order, timed as _time_blocks times an asynchronous
        trainer: step 1 alone (it compiles), then blocks of ASYNC_BLOCK steps sharing their time.

        A mark says only that its step had ended by then, and so had every step before it: step
        k ended no later than the earliest mark of any step from k on. A busy pool can take
        several marks at one instant, or a later step's before an earlier one's, so single steps
        cannot be told apart; a block's end can, and each of its steps gets the block's time /
        its steps. A block that ended no later than the one before it is not told apart from it
        either: the two share their time (after step 1, with the next block), so that no lap is
        0 and the laps add up to the run. The steps after the first NaN/inf loss are dropped, as
        lap() would have stopped there.
        """
        marks = sorted(self._marks)
        self._marks = []
        for cut, (_, _, value) in enumerate(marks):
            if not math.isfinite(value):
                marks = marks[:cut + 1]
                break
        ended_ns = [now_ns for _, now_ns, _ in marks]
        for k in range(len(ended_ns) - 2, -1, -1):
            ended_ns[k] = min(ended_ns[k], ended_ns[k + 1])
        blocks: list[list[int]] = []  # [steps, ended_ns]
        done, carried = 0, 0
        while done < len(marks):
            steps = 1 if done == 0 else min(ASYNC_BLOCK, len(marks) - done)
            done += steps
            steps, carried = steps + carried, 0
            if blocks and ended_ns[done - 1] <= blocks[-1][1]:
                if len(blocks) > 1:
                    blocks[-1][0] += steps
                else:  # step 1 is setup, timed alone: these steps go with the next block
                    carried = steps
                continue
            blocks.append([steps, ended_ns[done - 1]])
        if carried:  # nothing after step 1 ended later than it did
            blocks.append([carried, blocks[-1][1]])
        values = iter(value for _, _, value in marks)
        for steps, now_ns in blocks:
            now_ns = max(now_ns, self._last_ns)
            for _ in range(steps):
                self.times_s.append((now_ns - self._last_ns) * 1e-9 / steps)
                self.losses.append(next(values))
            self._last_ns = now_ns

    def laps_evenly(self, losses, fetch: Callable[[list], list[float]] | None = None) -> bool:
        """Record steps that ran since the last lap without one each (inside one call, or a block
        of asynchronous steps): each gets the time since then / len(losses), their losses fetched
        (by `fetch`, in one transfer, where given) inside that time. False once a loss is NaN/inf;
        the losses after the first such are dropped, as lap() would have stopped there.
        """
        self.sync()
        values = [float(v) for v in (fetch(losses) if fetch is not None else losses)]
        now_ns = time.perf_counter_ns()
        elapsed_s = (now_ns - self._last_ns) * 1e-9
        self._last_ns = now_ns
        for value in values:
            self.times_s.append(elapsed_s / max(len(values), 1))
            self.losses.append(value)
            if not math.isfinite(value):
                return False
        return True


Step = Callable[..., float]  # step() on the lecture's batch; step(x, y) on a minibatch from feed()


class Trainer(NamedTuple):
    """What an implementation's build(cfg, problem, variant) returns; the harness drives it.

    `step()` runs one SGD step and returns its loss (computed before the update). A
    framework whose own loop drives the steps (Keras fit, a Loop/scan over every step) gives
    `run(steps, clock)` instead, and calls clock.start() once and clock.lap(loss) after every
    step. In minibatch mode `feed()` makes the framework's iterator of device-ready (x, y)
    batches and `step(x, y)` trains on one (a `run` calls clock.data_done() when its batch is in).
    """

    step: Step | None = None
    sync: Callable[[], None] = no_sync  # waits until the device has finished queued work
    run: Callable[[int, "StepClock"], None] | None = None
    weights: Callable[[], tuple] | None = None  # the current (w1, w2) as NumPy arrays, for export
    feed: Callable[[], Iterator[tuple]] | None = None
    note: str | None = None  # how to read this run's times, when it differs from the others
    save: Callable[[Path], None] | None = None  # writes what the run built (graphs, models) into a folder
    collectives: Callable[[], float] | None = None  # data-parallel: one step's collectives, timed alone
    reports: bool = True  # False on data-parallel workers other than rank 0, which reports for all
    close: Callable[[], None] | None = None  # releases sessions and process groups once measured
    # `bare(steps)`: the same steps in one call with no per-step clock, callback or loss fetched (Keras
    # fit without its callback and metric); step trainers need none, the harness loops over step()
    bare: Callable[[int], None] | None = None
    # `profile(folder)`: a context manager that runs what it wraps under the framework's own
    # profiler and writes folder/trace.json (common.profiling's format)
    profile: Callable[[Path], ContextManager[None]] | None = None
    device_memory: Callable[[], float | None] | None = None  # on a GPU: the framework's own peak, in MB
    # `asynchronous`: step() returns before the device has finished (JAX always; every framework on
    # a GPU), so the clock times blocks of ASYNC_BLOCK steps and fetches their losses after each
    # block, by `fetch(losses)` (one transfer) where given, as a training loop that logs would
    asynchronous: bool = False
    fetch: Callable[[list], list[float]] | None = None

    def with_hooks(self, **fields) -> "Trainer":
        """The trainer with the fields a family helper's hooks() gives (sync, profiler, device memory,
        ...); a `note` there is added to the trainer's own rather than replacing it."""
        if fields.get("note") and self.note:
            fields["note"] = f"{self.note}; {fields['note']}"
        return self._replace(**fields)


# Steps per block of an asynchronous trainer: one sync and one fetch per block, and the block's
# time shared by its steps. A sync after every step would forbid what such a framework does in
# any loop that does not read each loss at once (queue step k+1 while step k runs): at 25, the
# block's own cost is within the figures' resolution (docs/measurement.md, the clock).
ASYNC_BLOCK = 25
# Said beside a minibatch row timed in blocks, whose data ms is blank
BLOCK_DATA_NOTE = (f"data time not split out: steps run in blocks of {ASYNC_BLOCK} with no sync between them, "
                   "so each batch's gather overlaps the steps still running (a sync per step would slow what it times)")


def time_steps(trainer: Trainer, steps: int, setup_step: bool = True) -> StepClock:
    """Run `steps` SGD steps; the clock holds per-step losses, wall times (and data times).

    Stops early at the first non-finite loss. `setup_step`: an asynchronous trainer's first step
    runs alone (it compiles); harness_cost, timing steps after training, asks for blocks only.
    """
    clock = StepClock(trainer.sync)
    if trainer.run is not None:
        trainer.run(steps, clock)
        return clock
    if trainer.asynchronous:
        return _time_blocks(trainer, steps, clock, setup_step)
    step = trainer.step
    clock.start()
    if trainer.feed is None:
        for _ in range(steps):
            if not clock.lap(step()):
                break
        return clock
    batches = trainer.feed()  # inside step 1's lap: starting loader workers is setup
    for _ in range(steps):
        x, y = next(batches)
        clock.data_done()
        if not clock.lap(step(x, y)):
            break
    _stop(batches)
    return clock


def _time_blocks(trainer: Trainer, steps: int, clock: StepClock, setup_step: bool = True) -> StepClock:
    """An asynchronous trainer's steps: step 1 alone (it compiles: setup; not without `setup_step`),
    then blocks of ASYNC_BLOCK steps with no sync between them, their losses fetched at its end. Each
    step of a block gets the block's time / its steps; in minibatch mode its data time is not
    split out (that would need a sync per step)."""
    batches = trainer.feed() if trainer.feed is not None else None
    step = trainer.step if batches is None else (lambda: trainer.step(*next(batches)))
    clock.start()
    done = 0
    while done < steps:
        block = 1 if done == 0 and setup_step else min(ASYNC_BLOCK, steps - done)
        if not clock.laps_evenly([step() for _ in range(block)], trainer.fetch):
            break
        done += block
    _stop(batches)
    return clock


def _stop(batches) -> None:
    """A feed's generator stops its prefetch threads when closed (after an early stop, or a block)."""
    close = getattr(batches, "close", None)
    if close is not None:
        close()


MIN_HARNESS_BLOCK = 25  # steps per block of harness_cost
MIN_HARNESS_PAIRS = 4  # fewer, and one noisy block decides the median
# Pairs per run (per round: the rounds' pairs are pooled, result.merge_rounds), each of
# MIN_HARNESS_BLOCK steps, as many as the run's steps allow up to this. Short pairs: for the same
# steps, 20 pairs of 25 gave a median whose spread over six repeats was 2.3 points, against 4.1 for
# 10 pairs of 50 (tensorflow/optimizer at the lecture's size, 2 cores): a neighbour's burst spoils one
# short pair, and the median of more pairs shrugs it off. 10 a round, 30 pooled over the default's 3
# rounds: 20 made the harness's measurement about a third of the default comparison's time.
HARNESS_PAIRS = 10


def run_bare(trainer: Trainer, steps: int) -> None:
    """`steps` steps with no per-step clock and no loss fetched; the device synced once at the end."""
    if trainer.bare is not None:
        trainer.bare(steps)
    else:
        step = trainer.step
        batches = trainer.feed() if trainer.feed is not None else None
        for _ in range(steps):
            if batches is None:
                step()
            else:
                step(*next(batches))
        _stop(batches)
    trainer.sync()


class HarnessCost(NamedTuple):
    """What harness_cost measured: the bare steps' seconds per step, the median pair's lapped /
    bare - 1, and every pair's, so that a run's rounds can pool them (result.merge_rounds)."""

    bare_step_s: float
    cost: float
    pair_costs: list[float]


def harness_cost(trainer: Trainer, steps: int, pairs: int = HARNESS_PAIRS) -> HarnessCost | None:
    """What the per-step measurement costs: bare seconds per step and lapped / bare - 1.

    Blocks of steps timed as the harness times them (a lap, a loss fetch, Keras' callback and
    metric) alternate with blocks of the same steps run bare, in ABBA order after one untimed
    pair, so that drift (warming caches, a neighbour's load) falls on both alike; each block is
    timed whole, so its own fixed cost (a fit call's set-up, a loader's start) is paid once by
    each side. The figure is the median over the pairs of lapped / bare, so that one block hit
    by a neighbour's burst (a shared machine's steal time) does not swing it. Up to `pairs` pairs
    of MIN_HARNESS_BLOCK steps; None when every step runs in one call already (nothing
    per step to leave out), or when the run has steps for fewer than MIN_HARNESS_PAIRS pairs.
    """
    pairs = min(pairs, steps // MIN_HARNESS_BLOCK)
    if (trainer.bare is None and trainer.step is None) or pairs < MIN_HARNESS_PAIRS:
        return None
    block = MIN_HARNESS_BLOCK
    clock = time.perf_counter_ns
    spent: dict[str, list[int]] = {"lapped": [], "bare": []}
    for pair in range(pairs + 1):
        order = ("lapped", "bare") if pair % 2 else ("bare", "lapped")
        for side in order:
            start_ns = clock()
            if side == "lapped":  # as the headline median's steps are timed: after step 1
                time_steps(trainer, block, setup_step=False)
            else:
                run_bare(trainer, block)
            if pair:  # the first pair warms the bare path (Keras compiles its plain model there)
                spent[side].append(clock() - start_ns)
    costs = [lapped / bare - 1 for lapped, bare in zip(spent["lapped"], spent["bare"])]
    return HarnessCost(median(spent["bare"]) * 1e-9 / block, median(costs), costs)


def time_calls(call: Callable[[], object], repeats: int, sync: Callable[[], None] = no_sync) -> list[float]:
    """Wall time of each of `repeats` calls (inference latency), clock stopped after sync()."""
    times_s = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        start_ns = clock()
        call()
        sync()
        times_s.append((clock() - start_ns) * 1e-9)
    return times_s


@dataclass(frozen=True)
class StepStats:
    """Summary of the timed steps after warm-up."""

    n: int
    median_s: float
    iqr_s: float
    min_s: float
    max_s: float

    @property
    def spread(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD


def median(values) -> float:
    """The suite's one median: the interpolated 0.5 quantile (numpy.median's, statistics.median's)."""
    return quantile(sorted(values), 0.5)


def quantile(sorted_values: list[float], q: float) -> float:
    # Linear interpolation between closest ranks, as numpy.quantile's default does.
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def step_stats(step_times_s: list[float], warmup: int, rounds: list[list[float]] | None = None) -> StepStats | None:
    """Statistics over step_times_s without step 1 (setup) and the next `warmup` steps.

    With `rounds` (each round's step_times_s), the timed steps of every round are pooled.
    """
    timed = sorted(t for times in (rounds or [step_times_s]) for t in times[1 + warmup:])
    if not timed:
        return None
    return StepStats(
        n=len(timed),
        median_s=quantile(timed, 0.5),
        iqr_s=quantile(timed, 0.75) - quantile(timed, 0.25),
        min_s=timed[0],
        max_s=timed[-1],
    )


def timer_overhead_s(laps: int = 20000) -> float:
    """The clock's own cost per step: the median lap of a step that does nothing."""
    clock = StepClock()
    clock.start()
    for _ in range(laps):
        clock.lap(0.0)
    return median(clock.times_s)
