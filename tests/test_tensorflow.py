"""Every TensorFlow graph variant computes the reference's losses, and really trains."""

import dataclasses
import importlib

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import TOLERANCE
from common.problem import make_problem
from common.runner import apply_verdict

tf = pytest.importorskip("tensorflow", reason="tensorflow not installed: pip install -e '.[tensorflow]'")
tfg = importlib.import_module("implementations.tensorflow_graphs")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", tfg.VARIANTS)
def test_variant_matches_reference_on_every_step_of_the_default_run(variant, dtype, references):
    cfg = RunConfig(dtype=dtype)
    result = apply_verdict(tfg.train(cfg, make_problem(cfg), variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps
    assert result.max_rel_err <= TOLERANCE[dtype]
    assert result.losses[-1] < 1e-6 * result.losses[0]  # the loss falls: the updates really ran
    assert result.threads == cfg.threads and result.versions["tensorflow"] == tf.__version__


def test_fetching_the_loss_alone_leaves_the_weights_unchanged():
    # The lecture's trap: without `updates` in the fetch list the graph never assigns.
    cfg = RunConfig(steps=3, dtype="float64")
    problem = make_problem(cfg)
    parts = tfg.build_parts(cfg, problem, "variables")
    feed = {parts.x: problem.x, parts.y: problem.y}
    loss_alone = [parts.session.run(parts.loss, feed_dict=feed) for _ in range(3)]
    assert loss_alone[0] == loss_alone[1] == loss_alone[2]
    np.testing.assert_array_equal(parts.session.run(parts.w1), problem.w1)
    first, second = parts.trainer.step(), parts.trainer.step()
    assert first == loss_alone[0] and second < first
    assert not np.array_equal(parts.session.run(parts.w1), problem.w1)
    parts.session.close()


def test_session_threads_go_through_config_proto():
    config = tfg.session_config(3)
    assert config.intra_op_parallelism_threads == 3 and config.inter_op_parallelism_threads == 3


def test_gpu_without_one_is_a_skip():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here")
    cfg = dataclasses.replace(RunConfig(steps=2), device="gpu")
    with pytest.raises(NotImplementedError, match="no GPU visible to TensorFlow"):
        tfg.build(cfg, make_problem(cfg), "variables")


@pytest.mark.parametrize("variant,ops", [
    ("feed", {"Placeholder", "MatMul", "Maximum", "Square", "Sum"}),
    ("variables", {"VarHandleOp", "AssignVariableOp", "ReadVariableOp", "MatMul"}),
    ("optimizer", {"ResourceApplyGradientDescent"}),
    ("function", {"AssignSubVariableOp", "MatMul"}),
])
def test_dump_graph_writes_the_graph_that_ran(cli, tmp_path, variant, ops):
    path = tmp_path / f"{variant}.pbtxt"
    proc = cli("-m", "implementations.tensorflow_graphs", "--variant", variant, "--steps", "2",
               "--dump-graph", str(path))
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    written = {line.split('"')[1] for line in text.splitlines() if line.strip().startswith("op:")}
    assert ops <= written, written
    if variant == "feed":
        assert "VarHandleOp" not in written  # weights live outside the graph


def test_help_of_the_feed_variant(cli):
    proc = cli("-m", "implementations.tensorflow_graphs", "--variant", "feed", "--help")
    assert proc.returncode == 0 and "--dump-graph" in proc.stdout and "feed" in proc.stdout
