"""The ONNX graphs: checked, serialized, loaded back from file, and equal to the reference."""

import dataclasses

import numpy as np
import pytest

from common.config import RunConfig
from common.equivalence import FACTOR
from common.problem import make_problem
from common import noise
from common.reference import loss_and_grads
from common.runner import apply_verdict
from common.timing import StepClock

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install -e '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install -e '.[onnx]'")
from implementations import REGISTRY, onnx_support  # noqa: E402
from implementations import onnx_runtime as O  # noqa: E402
from tests.conftest import small_config, train  # noqa: E402


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", REGISTRY["onnx"].variants)
def test_variant_matches_reference_on_every_step(variant, dtype, references):
    cfg = small_config(dtype=dtype)
    result = apply_verdict(train("onnx", cfg, variant), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == len(result.step_times_s) == cfg.steps
    assert result.x_noise <= FACTOR[dtype] and result.weights_x_noise <= FACTOR[dtype]  # losses and weights
    assert result.versions == {"onnx": onnx.__version__, "onnxruntime": ort.__version__}


@pytest.mark.parametrize("variant,files", [("step", {"init_net.onnx", "train_net.onnx", "predict_net.onnx"}),
                                           ("loop", {"init_net.onnx", "loop_net.onnx", "predict_net.onnx"})])
def test_graphs_are_written_checked_and_what_runs(tmp_path, variant, files):
    cfg = RunConfig(steps=5, dtype="float64")
    problem = make_problem(cfg)
    train("onnx", cfg, variant, artifacts=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == files
    for name in files:
        onnx.checker.check_model(str(tmp_path / name), full_check=True)
    init = onnx.load(str(tmp_path / "init_net.onnx"))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in init.graph.initializer}
    np.testing.assert_array_equal(weights["w1_init"], problem.w1)
    np.testing.assert_array_equal(weights["w2_init"], problem.w2)


def test_one_train_net_step_is_the_reference_step():
    cfg = RunConfig(dtype="float64", steps=1)
    problem = make_problem(cfg)
    session = ort.InferenceSession(O.train_net(problem, cfg.lr).SerializeToString(), providers=["CPUExecutionProvider"])
    loss, w1_new, w2_new = session.run(None, dict(zip("x y w1 w2".split(), problem)))
    ref_loss, grad_w1, grad_w2 = loss_and_grads(*problem)
    assert loss == pytest.approx(ref_loss, rel=1e-14)
    # Relative to the largest weight: an element near zero after cancellation has no digits to compare.
    for got, want in ((w1_new, problem.w1 - cfg.lr * grad_w1), (w2_new, problem.w2 - cfg.lr * grad_w2)):
        assert np.abs(got - want).max() <= 1e-14 * np.abs(want).max()


def test_step_variant_ping_pongs_and_reports_the_trained_weights():
    cfg = RunConfig(dtype="float64", steps=3)
    problem = make_problem(cfg)
    trainer = O.build(cfg, problem, "step")
    for _ in range(3):
        trainer.step()
    ref = O.build(cfg, problem, "loop")
    ref.run(3, StepClock())
    for got, want in zip(trainer.weights(), ref.weights()):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    trainer.close()
    ref.close()


def test_diverging_loop_stops_the_record_at_the_first_non_finite_loss():
    cfg = dataclasses.replace(RunConfig(steps=50), lr=1.0)
    result = apply_verdict(train("onnx", cfg, "loop"), noise.measure(cfg, make_problem(cfg)))
    assert result.status == "diverged" and not np.isfinite(result.losses[-1])


def test_gpu_without_cuda_provider_is_a_skip():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(NotImplementedError, match="no CUDAExecutionProvider"):
        onnx_support.providers("gpu")
