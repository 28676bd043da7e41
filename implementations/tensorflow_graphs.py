"""The two-layer net as TensorFlow graphs: build a static graph once, then run it many times.

- feed:      the lecture's first version: placeholders for x, y *and* the weights; the new
             weights come out of Session.run and are fed back in on every step.
- variables: weights live in the graph as Variables; assign ops grouped with the loss, so one
             Session.run does a whole step and the weights never leave the graph.
- optimizer: GradientDescentOptimizer(lr).minimize(loss) writes those assign ops for you.
- function:  TF2: the step as a Python function traced once by tf.function into a graph.
- xla:       the same with jit_compile=True: XLA compiles the traced graph into fused kernels.

As in the lecture, the TF1 variants feed x and y through placeholders on every step.
Run alone: python -m implementations.tensorflow_graphs --variant feed --artifacts graphs/
(graphs/graph.pbtxt is then the graph that ran, as GraphDef text)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from types import SimpleNamespace

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import Trainer
from implementations import tf_data, tf_support
from implementations.tf_support import tf, v1


# --- the network and loss ---------------------------------------------------------------------

def forward_loss(x, y, w1, w2):
    """The lecture's graph: the same ops in every variant."""
    h = tf.maximum(tf.matmul(x, w1), 0.0)
    y_pred = tf.matmul(h, w2)
    return tf.reduce_sum(tf.square(y_pred - y))


# --- the step of each variant -----------------------------------------------------------------

# TF1: a tf.Graph built once, then run by a Session on every step

def _data(problem):
    """x and y as placeholders: as in the lecture, the data is fed on every Session.run."""
    return (v1.placeholder(problem.x.dtype, problem.x.shape, name="x"),
            v1.placeholder(problem.y.dtype, problem.y.shape, name="y"))


def graph_feed(problem, lr):
    x, y = _data(problem)
    w1 = v1.placeholder(problem.w1.dtype, problem.w1.shape, name="w1")
    w2 = v1.placeholder(problem.w2.dtype, problem.w2.shape, name="w2")
    loss = forward_loss(x, y, w1, w2)
    grad_w1, grad_w2 = tf.gradients(loss, [w1, w2])
    new_w1 = w1 - lr * grad_w1
    new_w2 = w2 - lr * grad_w2
    return SimpleNamespace(x=x, y=y, w1=w1, w2=w2, loss=loss, new_w1=new_w1, new_w2=new_w2, init_feed={})


def _variables(problem):
    # Initialised from placeholders, so the 100k initial values stay out of the GraphDef.
    w1_init = v1.placeholder(problem.w1.dtype, problem.w1.shape, name="w1_init")
    w2_init = v1.placeholder(problem.w2.dtype, problem.w2.shape, name="w2_init")
    w1 = tf.Variable(w1_init, name="w1")
    w2 = tf.Variable(w2_init, name="w2")
    return w1, w2, {w1_init: problem.w1, w2_init: problem.w2}


def graph_variables(problem, lr):
    x, y = _data(problem)
    w1, w2, init_feed = _variables(problem)
    loss = forward_loss(x, y, w1, w2)
    grad_w1, grad_w2 = tf.gradients(loss, [w1, w2])
    # The assigns must wait for the whole backward pass: nothing else orders them after the
    # matmul that reads w2 for grad_w1, and with TF1's reference variables w2.assign can run
    # first, so that grad_w1 uses the new w2 (the lecture's script races so; a test forces it).
    with tf.control_dependencies([loss, grad_w1, grad_w2]):
        # Fetching `updates` with the loss is what makes a step train; fetch the loss alone and
        # the graph computes it and changes nothing (the lecture's classic bug).
        updates = tf.group(w1.assign(w1 - lr * grad_w1), w2.assign(w2 - lr * grad_w2))
    return SimpleNamespace(x=x, y=y, w1=w1, w2=w2, loss=loss, updates=updates, init_feed=init_feed)


def graph_optimizer(problem, lr):
    x, y = _data(problem)
    w1, w2, init_feed = _variables(problem)
    loss = forward_loss(x, y, w1, w2)
    # A Python float learning rate becomes a float32 tensor inside the optimizer and is then
    # cast to the variables' dtype: in float64 that trains with lr=9.99999997e-7, not 1e-6.
    updates = v1.train.GradientDescentOptimizer(tf.constant(lr, problem.x.dtype)).minimize(loss)
    return SimpleNamespace(x=x, y=y, w1=w1, w2=w2, loss=loss, updates=updates, init_feed=init_feed)


def open_session(cfg: RunConfig, start: Start, graph_of) -> SimpleNamespace:
    """The graph `graph_of` builds and a Session on it with its variables initialised; `parts.run` is
    Session.run, traced when profiled, and `parts.hooks` the Trainer fields that save, close and profile it."""
    graph = tf.Graph()  # placeholders and tf.gradients need a graph of their own, not eager mode
    with graph.as_default(), tf.device(start.device):
        parts = graph_of(start.problem, cfg.lr)
        init = v1.global_variables_initializer()
    parts.graph = graph
    parts.session = v1.Session(graph=graph, config=tf_support.session_config(cfg.threads))
    parts.session.run(init, feed_dict=parts.init_feed)
    parts.run, profile = tf_support.traced_session(parts.session)
    parts.hooks = {"save": lambda folder: write_graph(graph.as_graph_def(), folder), "close": parts.session.close,
                   "profile": profile}
    return parts


def build_feed(cfg: RunConfig, start: Start) -> Trainer:
    parts = open_session(cfg, start, graph_feed)
    values = {parts.x: start.x, parts.y: start.y, parts.w1: start.w1, parts.w2: start.w2}

    def step():
        # The weights make a round trip out of the graph and back in every step
        loss, values[parts.w1], values[parts.w2] = parts.run([parts.loss, parts.new_w1, parts.new_w2],
                                                             feed_dict=values)
        return loss

    return Trainer(step, weights=lambda: (values[parts.w1], values[parts.w2]), **parts.hooks)


def build_variables(cfg: RunConfig, start: Start, *, graph_of=graph_variables) -> Trainer:
    parts = open_session(cfg, start, graph_of)
    values = {parts.x: start.x, parts.y: start.y}

    def step():
        loss, _ = parts.run([parts.loss, parts.updates], feed_dict=values)
        return loss

    return Trainer(step, weights=lambda: tuple(parts.run([parts.w1, parts.w2])), **parts.hooks)


def build_optimizer(cfg: RunConfig, start: Start) -> Trainer:
    return build_variables(cfg, start, graph_of=graph_optimizer)


# TF2: eager Variables, the step traced once by tf.function into a graph

def build_function(cfg: RunConfig, start: Start, *, jit_compile: bool = False) -> Trainer:
    tf_support.set_threads(cfg.threads)
    dtype = start.problem.x.dtype
    with tf.device(start.device):
        if cfg.minibatch:  # each step gets its batch from the feed; these only name the shapes
            x, y = tf.TensorSpec((cfg.batch, cfg.d_in), dtype), tf.TensorSpec((cfg.batch, cfg.d_out), dtype)
        else:
            x, y = tf.constant(start.x), tf.constant(start.y)
        w1, w2 = tf.Variable(start.w1, name="w1"), tf.Variable(start.w2, name="w2")
    lr = tf.constant(cfg.lr, dtype=dtype)

    @tf.function(jit_compile=jit_compile)
    def train_step(x, y):
        # The tape records the forward pass; tracing turns all of it into one graph
        with tf.GradientTape() as tape:
            loss = forward_loss(x, y, w1, w2)
        grad_w1, grad_w2 = tape.gradient(loss, [w1, w2])
        w1.assign_sub(lr * grad_w1)
        w2.assign_sub(lr * grad_w2)
        return loss

    traced = lambda: train_step.get_concrete_function(x, y).graph.as_graph_def()  # noqa: E731
    # The step returns the loss tensor: the harness's clock fetches it, a bare run does not
    return Trainer(lambda x=x, y=y: train_step(x, y), weights=lambda: (w1.numpy(), w2.numpy()),
                   save=lambda folder: write_graph(traced(), folder), profile=tf_support.profile)


def build_xla(cfg: RunConfig, start: Start) -> Trainer:
    return build_function(cfg, start, jit_compile=True)


def write_graph(graph_def, folder: Path) -> None:
    """The GraphDef that ran, as text: what the lecture means by "the graph"."""
    (folder / "graph.pbtxt").write_text(str(graph_def))


BUILDERS = {"feed": build_feed, "variables": build_variables, "optimizer": build_optimizer,
            "function": build_function, "xla": build_xla}


# --- the feed (minibatch mode) ----------------------------------------------------------------

def make_feed(cfg: RunConfig, problem: Problem, device: str):
    """Minibatches in the shared order: gathered on the device (resident) or by a tf.data pipeline."""
    if cfg.feed == "resident":
        with tf.device(device):
            x_all, y_all = tf.constant(problem.x), tf.constant(problem.y)
            order_on_device = [tf.constant(rows) for rows in data.batch_order(cfg)]

        @tf.function  # one graph call per batch: two eager gathers cost more than the step's matmuls
        def gather_batch(rows):
            return tf.gather(x_all, rows), tf.gather(y_all, rows)

        def resident_batches():
            with tf.device(device):
                for rows in order_on_device:
                    yield gather_batch(rows)

        return resident_batches
    batches = tf_data.pipeline(cfg, problem)
    on_gpu = device.startswith("/GPU")

    def pipeline_batches():
        for x, y in batches:
            if on_gpu:  # the host-to-device copy, in the step's critical path
                with tf.device(device):
                    x, y = tf.identity(x), tf.identity(y)
            yield x, y

    return pipeline_batches


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    device = tf_support.device(cfg)
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, device, np.copy)  # TF1 feeds NumPy; TF2 makes its constants and Variables
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:  # every step gets its batch from the feed
        trainer = trainer._replace(feed=make_feed(cfg, problem, device))
    return trainer.with_hooks(**tf_support.hooks(device))


if __name__ == "__main__":
    from implementations.standalone import main

    main("tensorflow", build)
