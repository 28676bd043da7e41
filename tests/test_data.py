"""Minibatch mode: the shared shuffle order, and every framework x feed following it exactly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from common import data
from common.config import FEEDS, ConfigError, RunConfig
from common import noise
from common.equivalence import FACTOR, judge
from common.problem import make_problem
from common.reference import reference_losses
from common.runner import apply_verdict
from common.timing import BLOCK_DATA_NOTE, time_steps
from implementations import REGISTRY
from tests.conftest import small_config, train


def minibatch_config(**overrides) -> RunConfig:
    """96 rows in batches of 16: 6 shuffled steps per epoch, 3 epochs, float64."""
    # Default threads, as every other in-process TensorFlow test: TF sizes its pools once per process.
    values = dict(samples=96, batch=16, epochs=3, dtype="float64", threads=RunConfig().threads)
    values.update(overrides)
    return small_config(**values)


def test_steps_follow_from_samples_epochs_and_batch():
    cfg = minibatch_config(samples=100)  # 6 full batches of 16; the last 4 rows are dropped
    assert (cfg.steps_per_epoch, cfg.steps) == (6, 18)
    assert make_problem(cfg).x.shape == (100, cfg.d_in)


def test_every_epoch_is_a_fresh_permutation_cut_into_batches():
    cfg = minibatch_config()
    order = data.batch_order(cfg)
    assert order.shape == (cfg.steps, cfg.batch) and order.dtype == np.int64
    epochs = order.reshape(cfg.epochs, -1)
    for epoch in epochs:
        assert sorted(epoch) == list(range(cfg.samples))  # every row exactly once per epoch
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    assert not np.array_equal(epochs[0], np.arange(cfg.samples))  # really shuffled


def test_the_order_depends_on_the_seed_only():
    cfg = minibatch_config()
    assert np.array_equal(data.batch_order(cfg), data.batch_order(dataclasses.replace(cfg, feed="disk")))
    assert not np.array_equal(data.batch_order(cfg), data.batch_order(dataclasses.replace(cfg, seed=1)))


def test_disk_source_is_a_read_only_memory_map_of_the_same_rows_and_leaves_no_file():
    cfg = minibatch_config(feed="disk")
    problem = make_problem(cfg)
    x, y = data.host_source(cfg, problem)
    assert isinstance(x, np.memmap) and not x.flags.writeable
    assert np.array_equal(x, problem.x) and np.array_equal(y, problem.y)
    assert not Path(x.filename).exists()  # unlinked once mapped: nothing left behind


@pytest.mark.parametrize("workers", [0, 3])
def test_host_batches_come_in_order_with_or_without_prefetch_threads(workers):
    cfg = minibatch_config()
    problem = make_problem(cfg)
    order = data.batch_order(cfg)
    batches = list(data.host_batches(problem.x, problem.y, order, workers))
    assert len(batches) == cfg.steps
    for (x, y), rows in zip(batches, order):
        assert np.array_equal(x, problem.x[rows]) and np.array_equal(y, problem.y[rows])


def test_reference_trains_on_the_order_it_is_given():
    cfg = minibatch_config()
    problem = make_problem(cfg)
    shared = reference_losses(cfg, problem)
    reversed_order = reference_losses(cfg, problem, data.batch_order(cfg)[::-1])
    assert shared != reversed_order and len(shared) == cfg.steps
    assert shared[-1] < 0.5 * shared[0]  # it trains over the epochs


@pytest.mark.parametrize("bad, message", [
    (dict(samples=8, batch=16), "--samples (M=8) must be at least --batch (N=16)"),
    (dict(feed="floppy"), "--feed must be one of resident, copy, prefetch, disk"),
    (dict(epochs=0), "--epochs must be an integer >= 1"),
    (dict(loader_workers=0), "--loader-workers must be an integer >= 1"),
    (dict(pin_memory="maybe"), "--pin-memory must be one of auto, on, off"),
])
def test_bad_minibatch_settings_are_refused_with_their_name(bad, message):
    with pytest.raises(ConfigError) as info:
        minibatch_config(**bad)
    assert message in str(info.value)


# --- every framework and feed against the reference, float64, 3 shuffled epochs --------------

# Each implementation's default minibatch variant (compare.py's), from the registry: a new framework that
# trains on minibatches is held to the shared order here with no edit (what cannot run in-process says why there)
IN_PROCESS = [(impl.name, impl.minibatch[0]) for impl in REGISTRY.values()
              if impl.minibatch and not impl.why_not_in_process(impl.minibatch[0])]
# The lecture's first rung's math is the reference's own, so another order cannot tell it apart
FOLLOWERS = [(name, variant) for name, variant in IN_PROCESS if not REGISTRY[name].first_rung]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("name, variant", IN_PROCESS)
def test_every_framework_and_feed_matches_the_reference_over_shuffled_epochs(name, variant, feed, references):
    cfg = minibatch_config(feed=feed)
    result = apply_verdict(train(name, cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert result.x_noise <= FACTOR["float64"] and result.weights_x_noise <= FACTOR["float64"]
    assert result.feed == feed and result.name.endswith(f"{variant}+{feed}/cpu/float64")
    assert len(result.losses) == len(result.step_times_s) == cfg.steps
    if result.data_times_s or BLOCK_DATA_NOTE not in (result.note or ""):  # blocks of async steps: said, not split
        assert len(result.data_times_s) == cfg.steps
        assert all(0 <= d <= t for d, t in zip(result.data_times_s, result.step_times_s))


# Their other minibatch variants, torch.compile's included: here it compiles once, for one batch shape
OTHERS = [(name, variant) for name, _ in IN_PROCESS for variant in REGISTRY[name].minibatch[1:]]


@pytest.mark.parametrize("name, variant", OTHERS)
def test_the_other_minibatch_variants_match_too(name, variant, references):
    cfg = minibatch_config(feed="copy")
    result = apply_verdict(train(name, cfg, variant), references(cfg))
    assert result.status == "ok", result.error


@pytest.mark.parametrize("name, variant", FOLLOWERS)
def test_implementations_follow_the_shared_order_not_their_own(name, variant):
    """Same data, another order: the framework's losses match the shared order's reference
    and fail against the other order's, while the same seed reproduces them bit for bit."""
    cfg = minibatch_config(feed="prefetch")
    problem = make_problem(cfg)
    first = train(name, cfg, variant).losses
    again = train(name, cfg, variant).losses
    other_seed = train(name, dataclasses.replace(cfg, seed=1), variant).losses
    other_order = data.batch_order(dataclasses.replace(cfg, seed=1))
    assert first == again
    assert first != other_seed
    assert judge(first, noise.measure(cfg, problem), "float64").status == "ok"
    assert judge(first, noise.measure(cfg, problem, other_order), "float64").status == "mismatch"


def test_lecture_only_variants_are_skipped_in_minibatch_mode_with_the_reason():
    result = train("onnx", minibatch_config(), "loop")
    assert result.status == "skipped" and "minibatch mode (--samples) is built for step" in result.error


# --- through compare.py: Keras (one backend per process) and the table ------------------------

@pytest.mark.slow
@pytest.mark.parametrize("frameworks, dtype", [("keras-tensorflow,keras-jax", "float64"),
                                                ("keras-torch", "float32")])  # keras-torch: float64 refused
def test_keras_fit_matches_with_every_feed_through_compare(cli, tmp_path, frameworks, dtype):
    pytest.importorskip("keras", reason="keras not installed")
    proc = cli("compare.py", "--frameworks", frameworks, "--samples", "96", "--batch", "16", "--epochs", "3",
               "--d-in", "20", "--hidden", "6", "--d-out", "3", "--lr", "1e-3", "--warmup", "2", "--dtype", dtype,
               "--feed", "all", "--rounds", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    expected = {(f, feed) for f in frameworks.split(",") for feed in FEEDS}
    assert {(r["framework"], r["feed"]) for r in runs} == expected
    assert all(r["status"] == "ok" and r["variant"] == "fit" for r in runs), proc.stdout
    assert "data ms" in proc.stdout and "compute ms" in proc.stdout
    assert "step time vs resident: copy" in proc.stdout


@pytest.mark.slow
def test_compare_prints_the_split_for_every_framework_and_feed(cli):
    proc = cli("compare.py", "--frameworks", "numpy,torch,tensorflow,onnx", "--samples", "96", "--batch", "16",
               "--epochs", "2", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--lr", "1e-3", "--warmup", "2",
               "--feed", "all", "--rounds", "1", "--dtype", "float64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("manual", "module", "function", "step"):
        for feed in FEEDS:
            assert f"{label}+{feed}" in proc.stdout
    assert proc.stdout.count("step time vs resident") == 4
    assert "all 16 runs match" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--samples", "96", "--steps", "5"], "--steps cannot be set with --samples"),
    (["--feed", "copy"], "--feed needs --samples"),
    (["--samples", "96", "--sweep"], "--samples cannot be combined with --sweep"),
    (["--samples", "96", "--feed", "tape"], "--feed: unknown tape"),
])
def test_compare_refuses_bad_minibatch_flags_in_one_line(cli, args, message):
    proc = cli("compare.py", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, variant", [(impl.name, variant) for impl in REGISTRY.values()
                                           for variant in impl.minibatch if not impl.why_not_in_process(variant)])
def test_a_minibatch_run_asked_for_fewer_steps_than_its_feed_holds_takes_that_many(name, variant):
    """harness_cost times blocks shorter than the run against bare blocks of the same length: a
    trainer whose own loop ran the whole feed instead (Keras fit did) would read as a cost of 300%."""
    import importlib

    impl = REGISTRY[name]
    if impl.missing():
        pytest.skip(f"{', '.join(impl.missing())} not installed")
    cfg = minibatch_config()
    trainer = importlib.import_module(impl.module).build(cfg, make_problem(cfg), variant)
    block = cfg.steps_per_epoch - 1
    try:
        assert len(time_steps(trainer, block, setup_step=False).losses) == block
    finally:  # ONNX's nets live in a folder of their own until the trainer is closed
        if trainer.close:
            trainer.close()
