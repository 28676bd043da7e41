"""The Caffe2-style path: the network as serialized ONNX graphs, trained and run by ONNX Runtime.

No training framework is in the loop. Like Caffe2's init_net / predict_net pair, the model is
data: graphs built with onnx.helper, checked with onnx.checker, written to .onnx files, and
loaded back from those files by ONNX Runtime.

- init_net.onnx:  the Problem's initial weights as initializers; running it yields w1, w2.
- train_net.onnx: one SGD step: forward, the sum-of-squares loss, the backward pass derived by
                  hand (as in common/reference.py), the update. (x, y, w1, w2) -> (loss, w1', w2').
- loop_net.onnx:  train_net's step as the body of one ONNX Loop node: all steps in one call.
- predict_net.onnx: the forward pass alone with trained weights, any batch size (deploy).
- gather_net.onnx: minibatch mode, resident feed: (x_all, y_all, rows) -> one batch, on the device.

Variants: step (one ONNX Runtime call per SGD step, weights kept in bound OrtValues, ping-pong
buffers so an input and an output never share memory) and loop (one call for all steps).
Run alone: python -m implementations.onnx_runtime --variant step --artifacts models/ (the nets, and
predict_net.onnx with the trained weights)
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import StepClock, Trainer
from implementations import onnx_support
from implementations.onnx_support import Workspace, model_of, value



# --- the network and loss: graphs built with onnx.helper --------------------------------------

def init_net(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    """No inputs; outputs the initial weights, which it carries as initializers."""
    dtype = str(w1.dtype)
    graph = helper.make_graph(
        nodes=[helper.make_node("Identity", ["w1_init"], ["w1"]), helper.make_node("Identity", ["w2_init"], ["w2"])],
        name="init_net", inputs=[],
        outputs=[value("w1", dtype, w1.shape), value("w2", dtype, w2.shape)],
        initializer=[numpy_helper.from_array(w1, "w1_init"), numpy_helper.from_array(w2, "w2_init")],
    )
    return model_of(graph)


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


def _io(problem: Problem, batch: int):
    dtype = str(problem.x.dtype)
    return dtype, [value("x", dtype, [batch, problem.x.shape[1]]), value("y", dtype, [batch, problem.y.shape[1]]),
                   value("w1", dtype, problem.w1.shape), value("w2", dtype, problem.w2.shape)]


def train_net(problem: Problem, lr: float, batch: int | None = None) -> onnx.ModelProto:
    """(x, y, w1, w2) -> (loss, w1_new, w2_new): one SGD step on `batch` rows (default: all of x)."""
    dtype, inputs = _io(problem, batch or problem.x.shape[0])
    graph = helper.make_graph(
        nodes=sgd_step_nodes("x", "y", "w1", "w2", "loss", "w1_new", "w2_new"),
        name="train_net", inputs=inputs,
        outputs=[value("loss", dtype, []), value("w1_new", dtype, problem.w1.shape),
                 value("w2_new", dtype, problem.w2.shape)],
        initializer=_constants(dtype, lr),
    )
    return model_of(graph)


def loop_net(problem: Problem, lr: float) -> onnx.ModelProto:
    """(x, y, w1, w2, steps) -> (w1_final, w2_final, losses[steps]): every step in one Loop node."""
    dtype, inputs = _io(problem, problem.x.shape[0])
    body = helper.make_graph(
        nodes=[helper.make_node("Identity", ["cond_in"], ["cond_out"])]
        + sgd_step_nodes("x", "y", "w1_in", "w2_in", "loss", "w1_out", "w2_out", p="body_"),
        name="sgd_step",
        inputs=[helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                value("w1_in", dtype, problem.w1.shape), value("w2_in", dtype, problem.w2.shape)],
        outputs=[helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                 value("w1_out", dtype, problem.w1.shape), value("w2_out", dtype, problem.w2.shape),
                 value("loss", dtype, [])],  # a scan output: stacked into losses[steps]
        initializer=_constants(dtype, lr, p="body_"),
    )
    graph = helper.make_graph(
        nodes=[helper.make_node("Loop", ["steps", "keep_going", "w1", "w2"], ["w1_final", "w2_final", "losses"],
                                body=body)],
        name="loop_net",
        inputs=inputs + [helper.make_tensor_value_info("steps", TensorProto.INT64, [])],
        outputs=[value("w1_final", dtype, problem.w1.shape), value("w2_final", dtype, problem.w2.shape),
                 value("losses", dtype, ["steps"])],
        initializer=[numpy_helper.from_array(np.array(True), "keep_going")],
    )
    return model_of(graph)


def predict_net(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    """x[N, D_in] -> y_pred[N, D_out] for any N, the trained weights as initializers."""
    dtype = str(w1.dtype)
    graph = helper.make_graph(
        nodes=[helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["h_relu"]),
               helper.make_node("MatMul", ["h_relu", "w2"], ["y_pred"])],
        name="predict_net",
        inputs=[value("x", dtype, ["N", w1.shape[0]])],
        outputs=[value("y_pred", dtype, ["N", w2.shape[1]])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return model_of(graph)


# --- the step of each variant -----------------------------------------------------------------

def build_step(cfg: RunConfig, start: Start) -> Trainer:
    workspace, problem = start.device, start.problem
    session = workspace.load(train_net(problem, cfg.lr, cfg.batch), "train_net.onnx", trains=True)
    # In minibatch mode each step binds the feed's batch; these are bound only until then.
    x, y = workspace.put(problem.x[:cfg.batch]), workspace.put(problem.y[:cfg.batch])
    # Two buffers per weight: each step reads one and writes the other (ORT must not write an
    # output into a buffer it is still reading as an input).
    w1, w2 = start.w1, start.w2
    weights = [(workspace.put(w1), workspace.put(w2)),
               (workspace.empty(w1.shape, w1.dtype), workspace.empty(w2.shape, w2.dtype))]
    loss = ort.OrtValue.ortvalue_from_shape_and_type([], problem.x.dtype, "cpu", 0)  # read on the host

    bindings = []
    for (w1_in, w2_in), (w1_out, w2_out) in (weights, weights[::-1]):
        binding = session.io_binding()
        for name, bound in (("x", x), ("y", y), ("w1", w1_in), ("w2", w2_in)):
            binding.bind_ortvalue_input(name, bound)
        for name, bound in (("loss", loss), ("w1_new", w1_out), ("w2_new", w2_out)):
            binding.bind_ortvalue_output(name, bound)
        bindings.append(binding)
    state = {"step": 0}

    def step(x=None, y=None):
        binding = bindings[state["step"] % 2]
        if x is not None:
            binding.bind_ortvalue_input("x", x)
            binding.bind_ortvalue_input("y", y)
        session.run_with_iobinding(binding)
        state["step"] += 1
        return loss.numpy()[()]

    def current_weights():
        w1_now, w2_now = weights[state["step"] % 2]
        return w1_now.numpy().copy(), w2_now.numpy().copy()  # copies: the OrtValues' buffers die with them

    return Trainer(step, weights=current_weights)


def build_loop(cfg: RunConfig, start: Start) -> Trainer:
    session = start.device.load(loop_net(start.problem, cfg.lr), "loop_net.onnx", trains=True)
    final = {"weights": (start.w1, start.w2)}
    feed = lambda steps: {"x": start.x, "y": start.y, "w1": start.w1, "w2": start.w2,  # noqa: E731
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

    return Trainer(run=run, weights=lambda: final["weights"],
                   note="loop: one call ran every step; step time = total / steps")


BUILDERS = {"step": build_step, "loop": build_loop}


# --- the feed (minibatch mode) ----------------------------------------------------------------

def gather_net(problem: Problem, batch: int) -> onnx.ModelProto:
    """(x_all, y_all, rows) -> (x, y): one minibatch gathered from the dataset where it lives."""
    dtype = str(problem.x.dtype)
    rows_total, d_in = problem.x.shape
    d_out = problem.y.shape[1]
    graph = helper.make_graph(
        nodes=[helper.make_node("Gather", ["x_all", "rows"], ["x"], axis=0),
               helper.make_node("Gather", ["y_all", "rows"], ["y"], axis=0)],
        name="gather_net",
        inputs=[value("x_all", dtype, [rows_total, d_in]), value("y_all", dtype, [rows_total, d_out]),
                helper.make_tensor_value_info("rows", TensorProto.INT64, [batch])],
        outputs=[value("x", dtype, [batch, d_in]), value("y", dtype, [batch, d_out])],
    )
    return model_of(graph)


def make_feed(cfg: RunConfig, problem: Problem, workspace: Workspace):
    """Minibatches in the shared order, written into two device buffers the step reads.

    resident: gather_net picks each batch out of the dataset already on the device;
    otherwise NumPy batches (common.data: threads for prefetch, a memory map for disk) are
    copied into the buffers with update_inplace, the host-to-device copy on a GPU.
    """
    x_batch, y_batch = (workspace.empty([cfg.batch, a.shape[1]], a.dtype) for a in (problem.x, problem.y))
    if cfg.feed != "resident":
        def host_batches():
            for x, y in data.feed_batches(cfg, problem):
                x_batch.update_inplace(x)
                y_batch.update_inplace(y)
                yield x_batch, y_batch

        return host_batches
    session = workspace.load(gather_net(problem, cfg.batch), "gather_net.onnx")
    binding = session.io_binding()
    dataset = {"x_all": workspace.put(problem.x), "y_all": workspace.put(problem.y)}  # kept alive here
    for name, bound in dataset.items():
        binding.bind_ortvalue_input(name, bound)
    binding.bind_ortvalue_output("x", x_batch)
    binding.bind_ortvalue_output("y", y_batch)
    order_on_device = [workspace.put(rows) for rows in data.batch_order(cfg)]

    def resident_batches():
        for rows in order_on_device:
            binding.bind_ortvalue_input("rows", rows)
            session.run_with_iobinding(binding)
            yield x_batch, y_batch

    return resident_batches


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    device = onnx_support.Workspace(cfg)  # the nets are files, as Caffe2's were, written and run there
    # As with Caffe2, running init_net once yields the parameters; the training net is then loaded from file
    w1, w2 = device.load(init_net(problem.w1, problem.w2), "init_net.onnx").run(["w1", "w2"], {})
    start = place(cfg, problem._replace(w1=w1, w2=w2), device, np.copy)
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:  # every step gets its batch from the feed
        trainer = trainer._replace(feed=make_feed(cfg, problem, device))
    return trainer.with_hooks(**device.hooks(deploy=lambda: predict_net(*trainer.weights())))


if __name__ == "__main__":
    from implementations.standalone import main

    main("onnx", build)
