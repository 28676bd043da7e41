"""The Caffe2-style path: the network as serialized ONNX graphs, trained and run by ONNX Runtime.

No training framework is in the loop. Like Caffe2's init_net / predict_net pair, the model is
data: graphs built with onnx.helper, checked with onnx.checker, written to .onnx files, and
loaded back from those files by ONNX Runtime.

- init_net.onnx:  the Problem's initial weights as initializers; running it yields w1, w2.
- train_net.onnx: one SGD step: forward, the sum-of-squares loss, the backward pass derived by
                  hand (as in common/reference.py), the update. (x, y, w1, w2) -> (loss, w1', w2').
- loop_net.onnx:  train_net's step as the body of one ONNX Loop node: all steps in one call.
- predict_net.onnx: the forward pass alone with trained weights, any batch size (deploy).

Variants: step (one ONNX Runtime call per SGD step, weights kept in bound OrtValues, ping-pong
buffers so an input and an output never share memory) and loop (one call for all steps).
Run alone: python -m implementations.onnx_runtime --variant step --model-dir models/
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from common import runner
from common.config import RunConfig
from common.problem import Problem
from common.timing import StepClock, Trainer

FRAMEWORK = "onnx"
VARIANTS = ("step", "loop")
OPSET = 17  # every op used here exists unchanged since opset 13; 17 is what ORT 1.x fully covers
ELEM_TYPE = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fourways")
    model.ir_version = 8  # readable by every ONNX Runtime released since 2021
    return model


def _value(name: str, dtype: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, ELEM_TYPE[dtype], shape)


def init_net(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    """No inputs; outputs the initial weights, which it carries as initializers."""
    dtype = str(w1.dtype)
    graph = helper.make_graph(
        nodes=[helper.make_node("Identity", ["w1_init"], ["w1"]), helper.make_node("Identity", ["w2_init"], ["w2"])],
        name="init_net", inputs=[],
        outputs=[_value("w1", dtype, w1.shape), _value("w2", dtype, w2.shape)],
        initializer=[numpy_helper.from_array(w1, "w1_init"), numpy_helper.from_array(w2, "w2_init")],
    )
    return _model(graph)


def sgd_step_nodes(x: str, y: str, w1: str, w2: str, loss: str, w1_new: str, w2_new: str, p: str = ""):
    """One SGD step as ONNX nodes, with the reference's hand-derived backward pass.

    Names the constants `{p}lr`, `{p}two`, `{p}zero` and every intermediate `{p}...`.
    """
    n = helper.make_node
    return [
        # forward: h = x @ w1, h_relu = max(h, 0), y_pred = h_relu @ w2, loss = sum((y_pred - y)**2)
        n("MatMul", [x, w1], [f"{p}h"]),
        n("Relu", [f"{p}h"], [f"{p}h_relu"]),
        n("MatMul", [f"{p}h_relu", w2], [f"{p}y_pred"]),
        n("Sub", [f"{p}y_pred", y], [f"{p}diff"]),
        n("Mul", [f"{p}diff", f"{p}diff"], [f"{p}diff_sq"]),
        n("ReduceSum", [f"{p}diff_sq"], [loss], keepdims=0),
        # backward, written out as in common/reference.py
        n("Mul", [f"{p}two", f"{p}diff"], [f"{p}grad_y_pred"]),
        n("Transpose", [f"{p}h_relu"], [f"{p}h_relu_t"]),
        n("MatMul", [f"{p}h_relu_t", f"{p}grad_y_pred"], [f"{p}grad_w2"]),
        n("Transpose", [w2], [f"{p}w2_t"]),
        n("MatMul", [f"{p}grad_y_pred", f"{p}w2_t"], [f"{p}grad_h_relu"]),
        n("Less", [f"{p}h", f"{p}zero"], [f"{p}h_negative"]),
        n("Where", [f"{p}h_negative", f"{p}zero", f"{p}grad_h_relu"], [f"{p}grad_h"]),
        n("Transpose", [x], [f"{p}x_t"]),
        n("MatMul", [f"{p}x_t", f"{p}grad_h"], [f"{p}grad_w1"]),
        # update: w -= lr * grad
        n("Mul", [f"{p}lr", f"{p}grad_w1"], [f"{p}lr_grad_w1"]),
        n("Sub", [w1, f"{p}lr_grad_w1"], [w1_new]),
        n("Mul", [f"{p}lr", f"{p}grad_w2"], [f"{p}lr_grad_w2"]),
        n("Sub", [w2, f"{p}lr_grad_w2"], [w2_new]),
    ]


def _constants(dtype: str, lr: float, p: str = ""):
    scalar = lambda name, value: numpy_helper.from_array(np.array(value, dtype=dtype), f"{p}{name}")  # noqa: E731
    return [scalar("lr", lr), scalar("two", 2.0), scalar("zero", 0.0)]


def _io(problem: Problem):
    dtype = str(problem.x.dtype)
    return dtype, [_value("x", dtype, problem.x.shape), _value("y", dtype, problem.y.shape),
                   _value("w1", dtype, problem.w1.shape), _value("w2", dtype, problem.w2.shape)]


def train_net(problem: Problem, lr: float) -> onnx.ModelProto:
    """(x, y, w1, w2) -> (loss, w1_new, w2_new): one SGD step."""
    dtype, inputs = _io(problem)
    graph = helper.make_graph(
        nodes=sgd_step_nodes("x", "y", "w1", "w2", "loss", "w1_new", "w2_new"),
        name="train_net", inputs=inputs,
        outputs=[_value("loss", dtype, []), _value("w1_new", dtype, problem.w1.shape),
                 _value("w2_new", dtype, problem.w2.shape)],
        initializer=_constants(dtype, lr),
    )
    return _model(graph)


def loop_net(problem: Problem, lr: float) -> onnx.ModelProto:
    """(x, y, w1, w2, steps) -> (w1_final, w2_final, losses[steps]): every step in one Loop node."""
    dtype, inputs = _io(problem)
    body = helper.make_graph(
        nodes=[helper.make_node("Identity", ["cond_in"], ["cond_out"])]
        + sgd_step_nodes("x", "y", "w1_in", "w2_in", "loss", "w1_out", "w2_out", p="body_"),
        name="sgd_step",
        inputs=[helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                _value("w1_in", dtype, problem.w1.shape), _value("w2_in", dtype, problem.w2.shape)],
        outputs=[helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                 _value("w1_out", dtype, problem.w1.shape), _value("w2_out", dtype, problem.w2.shape),
                 _value("loss", dtype, [])],  # a scan output: stacked into losses[steps]
        initializer=_constants(dtype, lr, p="body_"),
    )
    graph = helper.make_graph(
        nodes=[helper.make_node("Loop", ["steps", "keep_going", "w1", "w2"], ["w1_final", "w2_final", "losses"],
                                body=body)],
        name="loop_net",
        inputs=inputs + [helper.make_tensor_value_info("steps", TensorProto.INT64, [])],
        outputs=[_value("w1_final", dtype, problem.w1.shape), _value("w2_final", dtype, problem.w2.shape),
                 _value("losses", dtype, ["steps"])],
        initializer=[numpy_helper.from_array(np.array(True), "keep_going")],
    )
    return _model(graph)


def predict_net(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    """x[N, D_in] -> y_pred[N, D_out] for any N, the trained weights as initializers."""
    dtype = str(w1.dtype)
    graph = helper.make_graph(
        nodes=[helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["h_relu"]),
               helper.make_node("MatMul", ["h_relu", "w2"], ["y_pred"])],
        name="predict_net",
        inputs=[_value("x", dtype, ["N", w1.shape[0]])],
        outputs=[_value("y_pred", dtype, ["N", w2.shape[1]])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return _model(graph)


def save_checked(model: onnx.ModelProto, path: Path) -> Path:
    """Write `model` and check the file itself, with shape inference (full_check)."""
    onnx.save(model, path)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    return options


def providers(device: str) -> list[str]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise NotImplementedError("the installed onnxruntime has no CUDAExecutionProvider")
    return ["CUDAExecutionProvider"]


def load_session(path: Path, cfg: RunConfig) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(cfg.threads), providers=providers(cfg.device))


def _ort_device(cfg: RunConfig) -> str:
    return "cuda" if cfg.device == "gpu" else "cpu"


def build_step(cfg: RunConfig, problem: Problem, session: ort.InferenceSession, w1, w2) -> Trainer:
    device = _ort_device(cfg)
    on_device = lambda a: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a), device, 0)  # noqa: E731
    x, y = on_device(problem.x), on_device(problem.y)
    # Two buffers per weight: each step reads one and writes the other (ORT must not write an
    # output into a buffer it is still reading as an input).
    weights = [(on_device(w1), on_device(w2)), (on_device(np.empty_like(w1)), on_device(np.empty_like(w2)))]
    loss = ort.OrtValue.ortvalue_from_shape_and_type([], problem.x.dtype, "cpu", 0)  # read on the host

    bindings = []
    for (w1_in, w2_in), (w1_out, w2_out) in (weights, weights[::-1]):
        binding = session.io_binding()
        for name, value in (("x", x), ("y", y), ("w1", w1_in), ("w2", w2_in)):
            binding.bind_ortvalue_input(name, value)
        for name, value in (("loss", loss), ("w1_new", w1_out), ("w2_new", w2_out)):
            binding.bind_ortvalue_output(name, value)
        bindings.append(binding)
    state = {"step": 0}

    def step():
        session.run_with_iobinding(bindings[state["step"] % 2])
        state["step"] += 1
        return loss.numpy()[()]

    def current_weights():
        w1_now, w2_now = weights[state["step"] % 2]
        return w1_now.numpy(), w2_now.numpy()

    return Trainer(step, weights=current_weights)


def build_loop(cfg: RunConfig, problem: Problem, session: ort.InferenceSession, w1, w2) -> Trainer:
    final = {"weights": (w1, w2)}
    feed = lambda steps: {"x": problem.x, "y": problem.y, "w1": w1, "w2": w2,  # noqa: E731
                          "steps": np.array(steps, dtype=np.int64)}
    # The loop's first call pays for allocations the later ones reuse; the other variants
    # leave theirs out of the statistics as warm-up steps. The Loop is a pure function of its
    # inputs, so a warm-up call (counted as setup) changes nothing that follows.
    session.run(None, feed(max(cfg.warmup, 1)))

    def run(steps: int, clock: StepClock):
        clock.start()
        w1_final, w2_final, losses = session.run(None, feed(steps))
        final["weights"] = (w1_final, w2_final)
        clock.laps_evenly(losses)  # one call did every step: each gets total / steps

    return Trainer(run=run, weights=lambda: final["weights"])


def write_models(cfg: RunConfig, problem: Problem, variant: str, model_dir: Path) -> tuple[Path, Path]:
    """init_net.onnx and the variant's training graph, checked, in model_dir."""
    model_dir.mkdir(parents=True, exist_ok=True)
    init_path = save_checked(init_net(problem.w1, problem.w2), model_dir / "init_net.onnx")
    if variant == "step":
        net_path = save_checked(train_net(problem, cfg.lr), model_dir / "train_net.onnx")
    else:
        net_path = save_checked(loop_net(problem, cfg.lr), model_dir / "loop_net.onnx")
    return init_path, net_path


def build(cfg: RunConfig, problem: Problem, variant: str, model_dir: Path) -> Trainer:
    providers(cfg.device)  # refuse before writing anything when there is no such device
    init_path, net_path = write_models(cfg, problem, variant, model_dir)
    # As with Caffe2: run init_net once to get the parameters, then the training net from file.
    w1, w2 = load_session(init_path, cfg).run(["w1", "w2"], {})
    session = load_session(net_path, cfg)
    return (build_step if variant == "step" else build_loop)(cfg, problem, session, w1, w2)


def train(cfg: RunConfig, problem: Problem, variant: str = "step", model_dir: Path | None = None,
          save_weights: Path | None = None):
    note = "loop: one call ran every step; step time = total / steps" if variant == "loop" else None
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(model_dir) if model_dir else Path(tmp)
        result = runner.run_training(cfg, FRAMEWORK, variant, lambda: build(cfg, problem, variant, directory),
                                     versions={"onnx": onnx.__version__, "onnxruntime": ort.__version__},
                                     note=note, save_weights=save_weights)
        if model_dir and save_weights is not None:
            w = np.load(save_weights)
            save_checked(predict_net(w["w1"], w["w2"]), directory / "predict_net.onnx")
    return result


if __name__ == "__main__":
    runner.main(FRAMEWORK, VARIANTS, train, options={
        "--model-dir": dict(type=Path, metavar="DIR",
                            help="keep init_net.onnx and train_net.onnx / loop_net.onnx here (and, with "
                                 "--save-weights, predict_net.onnx with the trained weights)"),
    })
