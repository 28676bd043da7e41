"""Every TensorFlow graph variant computes the reference's losses, and really trains."""

import dataclasses
import importlib

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import FACTOR
from common.problem import make_problem, place
from common.runner import apply_verdict
from implementations import REGISTRY
from tests.conftest import small_config, train

tf = pytest.importorskip("tensorflow", reason="tensorflow not installed: pip install -e '.[tensorflow]'")
tfg = importlib.import_module("implementations.tensorflow_graphs")
tf_support = importlib.import_module("implementations.tf_support")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", REGISTRY["tensorflow"].variants)
def test_variant_matches_reference_on_every_step(variant, dtype, references):
    cfg = small_config(dtype=dtype)
    result = apply_verdict(train("tensorflow", cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps
    assert result.x_noise <= FACTOR[dtype] and result.weights_x_noise <= FACTOR[dtype]  # losses and weights
    assert result.losses[-1] < 0.1 * result.losses[0]  # the loss falls: the updates really ran
    assert result.threads == cfg.threads and result.versions["tensorflow"] == tf.__version__


def test_fetching_the_loss_alone_leaves_the_weights_unchanged():
    # The lecture's trap: without `updates` in the fetch list the graph never assigns.
    cfg = RunConfig(steps=3, dtype="float64")
    problem = make_problem(cfg)
    parts = tfg.open_session(cfg, place(cfg, problem, "/CPU:0", np.copy), tfg.graph_variables)
    feed = {parts.x: problem.x, parts.y: problem.y}
    loss_alone = [parts.session.run(parts.loss, feed_dict=feed) for _ in range(3)]
    assert loss_alone[0] == loss_alone[1] == loss_alone[2]
    np.testing.assert_array_equal(parts.session.run(parts.w1), problem.w1)
    first, _ = parts.session.run([parts.loss, parts.updates], feed_dict=feed)
    second, _ = parts.session.run([parts.loss, parts.updates], feed_dict=feed)
    assert first == loss_alone[0] and second < first
    assert not np.array_equal(parts.session.run(parts.w1), problem.w1)
    parts.session.close()


def test_session_threads_go_through_config_proto():
    config = tf_support.session_config(3)
    assert config.intra_op_parallelism_threads == 3 and config.inter_op_parallelism_threads == 3


def test_gpu_without_one_is_a_skip():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here")
    cfg = dataclasses.replace(RunConfig(steps=2), device="gpu")
    with pytest.raises(NotImplementedError, match="no GPU visible to TensorFlow"):
        tfg.build(cfg, make_problem(cfg), "variables")


@pytest.mark.slow
@pytest.mark.parametrize("variant,ops", [
    ("feed", {"Placeholder", "MatMul", "Maximum", "Square", "Sum"}),
    ("variables", {"VarHandleOp", "AssignVariableOp", "ReadVariableOp", "MatMul"}),
    ("optimizer", {"ResourceApplyGradientDescent"}),
    ("function", {"AssignSubVariableOp", "MatMul"}),
])
def test_artifacts_hold_the_graph_that_ran(cli, tmp_path, variant, ops):
    proc = cli("-m", "implementations.tensorflow_graphs", "--variant", variant, "--steps", "2",
               "--artifacts", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "graph.pbtxt").read_text()
    written = {line.split('"')[1] for line in text.splitlines() if line.strip().startswith("op:")}
    assert ops <= written, written
    if variant == "feed":
        assert "VarHandleOp" not in written  # weights live outside the graph


def test_help_of_the_feed_variant(cli):
    proc = cli("-m", "implementations.tensorflow_graphs", "--variant", "feed", "--help")
    assert proc.returncode == 0 and "--artifacts" in proc.stdout and "feed" in proc.stdout


def test_a_thread_count_tensorflow_cannot_honour_is_an_error_not_a_silent_mismatch():
    tf.constant(1.0) + 1.0  # TF's pools are fixed from here on in this process
    actual = tf.config.threading.get_intra_op_parallelism_threads() or RunConfig().threads
    with pytest.raises(RuntimeError, match=f"already runs with {actual} threads"):
        tf_support.set_threads(actual + 1)


def test_assigns_wait_for_the_backward_pass_and_a_racy_order_is_a_mismatch():
    """The variables graph orders its assigns after both gradients; the order that the lecture's
    script allows with reference variables (w2 updated before grad_w1 reads it) is forced here,
    and the check reports it."""
    from common import noise
    from common.equivalence import judge

    cfg = small_config(dtype="float64")
    problem = make_problem(cfg)
    parts = tfg.open_session(cfg, place(cfg, problem, "/CPU:0", np.copy), tfg.graph_variables)
    step = parts.updates.control_inputs  # the group: the two assigns, and what they must wait for
    assigns = [op for op in step if op.type.startswith("Assign")]
    awaited = {op.name for op in step if not op.type.startswith("Assign")}  # the loss and both gradients
    assert len(assigns) == 2 and len(awaited) == 3
    for assign in assigns:
        ancestors, todo = set(), [assign]
        while todo:
            op = todo.pop()
            for parent in [i.op for i in op.inputs] + list(op.control_inputs):
                if parent.name not in ancestors:
                    ancestors.add(parent.name)
                    todo.append(parent)
        assert awaited <= ancestors, (assign.name, awaited - ancestors)
    parts.session.close()

    graph = tf.Graph()
    with graph.as_default():
        x, y = tfg._data(problem)
        w1, w2, init_feed = tfg._variables(problem)
        loss = tfg.forward_loss(x, y, w1, w2)
        grad_w2 = tf.gradients(loss, [w2])[0]
        new_w2 = w2.assign(w2 - cfg.lr * grad_w2)
        with tf.control_dependencies([new_w2]):  # the race, forced: grad_w1 sees the updated w2
            grad_w1 = tf.gradients(tfg.forward_loss(x, y, w1, w2.read_value()), [w1])[0]
            updates = tf.group(w1.assign(w1 - cfg.lr * grad_w1))
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph, config=tf_support.session_config(cfg.threads)) as session:
        session.run(init, feed_dict=init_feed)
        feed = {x: problem.x, y: problem.y}
        losses = [session.run([loss, updates], feed_dict=feed)[0] for _ in range(cfg.steps)]
    verdict = judge(losses, noise.measure(cfg, problem), "float64")
    assert verdict.status == "mismatch" and verdict.worst_step >= 2, verdict
