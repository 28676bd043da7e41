"""The two-layer net through Keras 3, the high-level API: Sequential, compile, fit.

- fit:            all steps in one model.fit call; per-step losses and times come from a
                  callback (one fit call per step would measure fit's ~24 ms epoch set-up).
- train_on_batch: one call per step, Keras' documented low-level loop.

The backend is Keras' own choice, made before import: KERAS_BACKEND=tensorflow|torch|jax.
Run alone: KERAS_BACKEND=torch python -m implementations.keras_api --variant fit
"""

from __future__ import annotations

from implementations import jax_x64  # noqa: F401  (float64 on the jax backend: before keras imports jax)

import keras
import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import ASYNC_BLOCK, Trainer
from implementations import keras_support
from implementations.keras_support import BACKEND


# --- the network and loss ---------------------------------------------------------------------

def sum_of_squares(y_true, y_pred):
    """Per-sample loss: the sum over outputs of (y_pred - y)**2."""
    return keras.ops.sum(keras.ops.square(y_pred - y_true), axis=-1)


class SumOfSquares(keras.losses.Loss):
    """sum_of_squares with reduction="sum": the batch total is the lecture's loss.

    Keras' MeanSquaredError averages over outputs and its default reduction averages over the
    batch: both would rescale the loss and, silently, the gradient.
    """

    def call(self, y_true, y_pred):
        return sum_of_squares(y_true, y_pred)


def make_model(problem: Problem, lr: float, dtype: str, step_loss: bool = False) -> keras.Model:
    """`step_loss`: keras.Sequential as the harness extends it, to put each step's loss in fit's logs
    (training runs ask for it; a plain model is what a user would fit, save or export)."""
    d_in, h = problem.w1.shape
    d_out = problem.w2.shape[1]
    sequential = keras_support.StepLossSequential if step_loss else keras.Sequential
    model = sequential([
        keras.Input(shape=(d_in,), dtype=dtype),
        keras.layers.Dense(h, activation="relu", use_bias=False),
        keras.layers.Dense(d_out, use_bias=False),
    ])
    model.set_weights([problem.w1, problem.w2])
    loss = SumOfSquares(reduction="sum", dtype=dtype)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss)
    return model


# --- the step of each variant -----------------------------------------------------------------

class RepeatBatch(keras.utils.PyDataset):
    """The one lecture batch, `steps` times: one epoch of fit is the whole training run."""

    def __init__(self, x, y, steps):
        super().__init__()
        self.x, self.y, self.steps = x, y, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.x, self.y


def build_fit(cfg: RunConfig, start: Start) -> Trainer:
    """fit over RepeatBatch (the lecture's batch), or over the feed's batches in minibatch mode: all
    of the run's epochs are one fit epoch, because the shared order already spans them."""
    model = make_model(start.problem, cfg.lr, cfg.dtype, step_loss=True)
    x, y, batches = start.x, start.y, make_feed(cfg, start.problem) if cfg.minibatch else None

    def run(steps, clock):
        if batches is None:
            model.fit(RepeatBatch(x, y, steps), epochs=1, verbose=0, shuffle=False,
                      callbacks=[keras_support.MarkingClockCallback(clock)])
        else:  # data time needs each batch's begin against the step before's end, in one thread
            model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
                      callbacks=[keras_support.ClockCallback(clock, minibatch=True)])

    plain = {}

    def bare(steps):
        """fit as a user would call it: no callback, and a copy of the model as a plain
        keras.Sequential (no per-step loss in its logs); what the two cost is this row's harness cost."""
        if not plain:
            plain["model"] = make_model(start.problem, cfg.lr, cfg.dtype)
        if batches is None:
            plain["model"].fit(RepeatBatch(x, y, steps), epochs=1, verbose=0, shuffle=False)
        else:
            plain["model"].fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    note = ("fit: each step's end is marked when its loss reaches fit's batch-end callbacks (in Keras' callback "
            f"thread pool on jax and torch, which may take them late or together), so steps are timed in blocks of "
            f"{ASYNC_BLOCK} after step 1, each step the block's time / {ASYNC_BLOCK}")
    if batches is not None:
        note = "fit: times are the gaps between fit's batch-end callbacks"
        note += ("; data time is the gap from batch-end to batch-begin" +
                 ("; the TF train function pulls its batch itself, so that counts as compute"
                  if BACKEND == "tensorflow" else ""))
    return Trainer(run=run, bare=bare, note=note, weights=lambda: tuple(model.get_weights()))


def build_train_on_batch(cfg: RunConfig, start: Start) -> Trainer:
    model = make_model(start.problem, cfg.lr, cfg.dtype, step_loss=True)

    def step():
        return model.train_on_batch(start.x, start.y, return_dict=True)["step_loss"]

    return Trainer(step, weights=lambda: tuple(model.get_weights()))


BUILDERS = {"fit": build_fit, "train_on_batch": build_train_on_batch}


# --- the feed (minibatch mode) ----------------------------------------------------------------

class ResidentBatches(keras.utils.PyDataset):
    """Minibatch mode, resident feed: the dataset converted once to the backend's tensors;
    each batch gathered from them with keras.ops.take, in the shared order."""

    def __init__(self, x_all, y_all, order):
        super().__init__()
        self.x_all, self.y_all, self.order = x_all, y_all, order

    def __len__(self):
        return len(self.order)

    def __getitem__(self, index):
        rows = self.order[index]
        return keras.ops.take(self.x_all, rows, axis=0), keras.ops.take(self.y_all, rows, axis=0)


def make_feed(cfg: RunConfig, problem: Problem):
    """What fit iterates in minibatch mode: resident backend tensors, or a tf.data pipeline
    (Keras' documented input on every backend; copy, prefetch, disk as in tf_data.py)."""
    if cfg.feed == "resident":
        return ResidentBatches(keras.ops.convert_to_tensor(problem.x), keras.ops.convert_to_tensor(problem.y),
                               data.batch_order(cfg))
    from implementations import tf_data

    return tf_data.pipeline(cfg, problem)


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    device = keras_support.start(cfg)
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, device, np.array)
    with keras_support.device_scope(device):  # fit takes its batches itself, in minibatch mode too
        trainer = BUILDERS[variant](cfg, start)
    return trainer.with_hooks(**keras_support.hooks(device, trainer))


if __name__ == "__main__":
    from implementations.standalone import main

    main(f"keras-{BACKEND}", build)
