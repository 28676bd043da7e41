"""The two-layer net through Keras 3, the high-level API: Sequential, compile, fit.

- fit:            all steps in one model.fit call; per-step losses and times come from a
                  callback (one fit call per step would measure fit's ~24 ms epoch set-up).
- train_on_batch: one call per step, Keras' documented low-level loop.

The backend is Keras' own choice, made before import: KERAS_BACKEND=tensorflow|torch|jax.
Run alone: KERAS_BACKEND=torch python -m implementations.keras_api --variant fit
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX computes in float32 unless x64 is enabled before it is imported; float32 runs are
# unaffected because every array and variable here has an explicit dtype.
os.environ.setdefault("JAX_ENABLE_X64", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import data, runner  # noqa: E402
from common.config import RunConfig  # noqa: E402
from common.problem import Problem  # noqa: E402
from common.timing import Trainer, no_sync  # noqa: E402

BACKEND = keras.backend.backend()
FRAMEWORK = f"keras-{BACKEND}"
VARIANTS = ("fit", "train_on_batch")
MINIBATCH_VARIANTS = ("fit",)  # fit is what consumes an input pipeline


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


class StepLoss(keras.metrics.Metric):
    """This step's loss, not a running mean: what fit's callbacks would otherwise see."""

    def __init__(self, dtype):
        super().__init__(name="step_loss", dtype=dtype)
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # The same ops as the loss with reduction="sum", so the same bits
        self.value.assign(keras.ops.sum(sum_of_squares(keras.ops.cast(y_true, self.dtype), y_pred)))

    def result(self):
        return keras.ops.convert_to_tensor(self.value)  # a tensor, not the variable (jax insists)


def make_model(problem: Problem, lr: float, dtype: str) -> keras.Model:
    d_in, h = problem.w1.shape
    d_out = problem.w2.shape[1]
    model = keras.Sequential([
        keras.Input(shape=(d_in,), dtype=dtype),
        keras.layers.Dense(h, activation="relu", use_bias=False),
        keras.layers.Dense(d_out, use_bias=False),
    ])
    model.set_weights([problem.w1, problem.w2])
    loss = SumOfSquares(reduction="sum", dtype=dtype)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss,
                  metrics=[StepLoss(dtype)])
    return model


class RepeatBatch(keras.utils.PyDataset):
    """The one lecture batch, `steps` times: one epoch of fit is the whole training run."""

    def __init__(self, x, y, steps):
        super().__init__()
        self.x, self.y, self.steps = x, y, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.x, self.y


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


def minibatches(cfg: RunConfig, problem: Problem):
    """What fit iterates in minibatch mode: resident backend tensors, or a tf.data pipeline
    (Keras' documented input on every backend; copy, prefetch, disk as in tf_data.py)."""
    if cfg.feed == "resident":
        return ResidentBatches(keras.ops.convert_to_tensor(problem.x), keras.ops.convert_to_tensor(problem.y),
                               data.batch_order(cfg))
    from implementations import tf_data

    return tf_data.pipeline(cfg, problem)


class ClockCallback(keras.callbacks.Callback):
    """Hands each step's end to the harness's clock; fit's own loop does the stepping."""

    def __init__(self, clock, minibatch=False):
        super().__init__()
        self.clock = clock
        self.minibatch = minibatch

    def on_train_begin(self, logs=None):
        self.clock.start()

    def on_train_batch_begin(self, batch, logs=None):
        if self.minibatch:
            self.clock.data_done()

    def on_train_batch_end(self, batch, logs=None):
        if not self.clock.lap(logs["step_loss"]):
            self.model.stop_training = True


def build_fit(model, x, y, batches=None):
    """fit over RepeatBatch (the lecture's batch), or over `batches` in minibatch mode: all of
    the run's epochs are one fit epoch, because the shared order already spans them."""
    def run(steps, clock):
        model.fit(RepeatBatch(x, y, steps) if batches is None else batches, epochs=1, verbose=0, shuffle=False,
                  callbacks=[ClockCallback(clock, minibatch=batches is not None)])

    return run


def build_train_on_batch(model, x, y):
    def step():
        return model.train_on_batch(x, y, return_dict=True)["step_loss"]

    return step


def _check_float64(dtype: str) -> None:
    # Measured, not assumed: on the torch backend keras.ops.matmul returns float32 for
    # float64 inputs (keras-team/keras issue 23704), which would make a float64 check lie.
    if dtype != "float64":
        return
    a = keras.ops.ones((2, 2), dtype="float64")
    if keras.ops.matmul(a, a).dtype != "float64":
        raise NotImplementedError(f"Keras on the {BACKEND} backend computes float64 matmuls in float32 "
                                  "(keras-team/keras issue 23704)")


def _device_and_sync(cfg: RunConfig):
    """Keras' device scope name and the backend's device barrier."""
    if cfg.device == "cpu":
        if BACKEND == "torch":
            import torch

            if torch.cuda.is_available():
                raise NotImplementedError("Keras' torch backend puts the model on the GPU when there is one; "
                                          "run with CUDA_VISIBLE_DEVICES= for the CPU")
        return "cpu:0", no_sync
    if BACKEND == "torch":
        import torch

        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            return "gpu:0", torch.cuda.synchronize
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_tensor_float_32_execution(False)
            return "gpu:0", tf.test.experimental.sync_devices
    elif BACKEND == "jax":
        import jax

        if any(d.platform == "gpu" for d in jax.devices()):
            jax.config.update("jax_default_matmul_precision", "highest")  # no TF32
            # One jitted function per step, whose loss is fetched to the host: done when fetched.
            return "gpu:0", no_sync
    raise NotImplementedError(f"no GPU visible to Keras' {BACKEND} backend")


def _set_threads(threads: int) -> None:
    if BACKEND == "torch":
        import torch

        torch.set_num_threads(threads)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        try:  # only possible before the first op; later runs in one process keep the first setting
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    # jax (XLA:CPU) has no thread setting of its own; compare.py caps it through the
    # environment (OMP/MKL/OpenBLAS) and the process's thread pools like every other run.


def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    runner.refuse_minibatch(cfg, variant, MINIBATCH_VARIANTS)
    _check_float64(cfg.dtype)
    _set_threads(cfg.threads)
    # Both must precede any layer: the policy sets the layers' weights and compute, floatx
    # the optimizer's learning-rate variable (a float32 1e-6 is 9.99999997e-7 in float64).
    keras.config.set_dtype_policy(cfg.dtype)
    keras.config.set_floatx(cfg.dtype)
    device, sync = _device_and_sync(cfg)
    with _device_scope(device):
        model = make_model(problem, cfg.lr, cfg.dtype)
    x, y = np.array(problem.x), np.array(problem.y)
    weights = lambda: tuple(model.get_weights())  # noqa: E731
    if variant == "fit":
        with _device_scope(device):
            batches = minibatches(cfg, problem) if cfg.minibatch else None
        return Trainer(sync=sync, run=_in_device(device, build_fit(model, x, y, batches)), weights=weights)
    return Trainer(_in_device(device, build_train_on_batch(model, x, y)), sync, weights=weights)


def _device_scope(device: str):
    # On the torch backend, variables created inside keras.device() get no gradients
    # ("No gradients provided for any variable", Keras 3.15); that backend places on CUDA
    # by itself whenever there is one, so it gets no scope and _device_and_sync refuses the
    # one case it cannot honour.
    return contextlib.nullcontext() if BACKEND == "torch" else keras.device(device)


def _in_device(device: str, fn):
    def wrapped(*args):
        with _device_scope(device):
            return fn(*args)

    return wrapped


def versions() -> dict:
    found = {"keras": keras.__version__}
    backend = __import__(BACKEND)
    found[BACKEND] = backend.__version__
    return found


def train(cfg: RunConfig, problem: Problem, variant: str = "fit", save_weights=None):
    note = "fit: times are the gaps between fit's batch-end callbacks" if variant == "fit" else None
    if variant == "fit" and cfg.minibatch:
        note += ("; data time is the gap from batch-end to batch-begin" +
                 ("; the TF train function pulls its batch itself, so that counts as compute"
                  if BACKEND == "tensorflow" else ""))
    return runner.run_training(cfg, FRAMEWORK, variant, lambda: build(cfg, problem, variant),
                               versions=versions(), note=note, save_weights=save_weights)


if __name__ == "__main__":
    runner.main(FRAMEWORK, VARIANTS, train)
