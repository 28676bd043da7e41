"""The plumbing of Keras runs, whichever backend KERAS_BACKEND names: float64, device, threads,
profiler, and what the harness adds to fit (each step's loss in its logs, and the clock's callbacks).

The backend's own family helper (torch_support, tf_support) does the work where there is one.
"""

from __future__ import annotations

import contextlib

import keras

from common.config import RunConfig
from common.timing import no_sync

BACKEND = keras.backend.backend()


def check_float64(dtype: str) -> None:
    """Refuse float64 (a skip) where the backend would compute it in float32."""
    # Measured, not assumed: on the torch backend keras.ops.matmul returns float32 for
    # float64 inputs (keras-team/keras issue 23704), which would make a float64 check lie.
    if dtype != "float64":
        return
    a = keras.ops.ones((2, 2), dtype="float64")
    if keras.ops.matmul(a, a).dtype != "float64":
        raise NotImplementedError(f"Keras on the {BACKEND} backend computes float64 matmuls in float32 "
                                  "(keras-team/keras issue 23704)")


def start(cfg: RunConfig) -> str:
    """What every Keras run sets before it builds: float64 refused where the backend would not compute
    it, the backend's threads, the dtype policy and floatx, then its device; the device scope's name."""
    check_float64(cfg.dtype)
    set_threads(cfg.threads)
    # Both must precede any layer: the policy sets the layers' weights and compute, floatx
    # the optimizer's learning-rate variable (a float32 1e-6 is 9.99999997e-7 in float64).
    # bf16-mixed: Keras' documented mixed_bfloat16 policy, float32 variables and bf16 compute
    keras.config.set_dtype_policy("mixed_bfloat16" if cfg.precision == "bf16-mixed" else cfg.dtype)
    keras.config.set_floatx(cfg.dtype)
    return device(cfg)


def device(cfg: RunConfig) -> str:
    """Keras' device scope name, from the backend's own helper, which refuses a device it lacks."""
    if BACKEND == "torch":
        import torch

        from implementations import torch_support

        if cfg.device == "cpu" and torch.cuda.is_available():
            raise NotImplementedError("Keras' torch backend puts the model on the GPU when there is one; "
                                      "run with CUDA_VISIBLE_DEVICES= for the CPU")
        return f"{'gpu' if torch_support.device(cfg).type == 'cuda' else 'cpu'}:0"
    if BACKEND == "tensorflow":
        from implementations import tf_support

        try:
            return tf_support.device(cfg).strip("/").lower()
        except NotImplementedError:
            raise NotImplementedError("no GPU visible to Keras' tensorflow backend") from None
    if cfg.device == "cpu":
        return "cpu:0"
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        raise NotImplementedError(f"no GPU visible to Keras' {BACKEND} backend")
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32
    return "gpu:0"


def sync(device: str):
    """The backend's device barrier the clock waits on before it stops."""
    if BACKEND == "torch":
        import torch

        from implementations import torch_support

        return torch_support.sync(torch.device("cuda" if device.startswith("gpu") else "cpu"))
    if BACKEND == "tensorflow":
        from implementations import tf_support

        return tf_support.sync("/" + device.upper())
    return no_sync  # jax: one jitted function per step, whose loss is fetched to the host: done when fetched


def set_threads(threads: int) -> None:
    if BACKEND == "torch":
        from implementations import torch_support

        torch_support.set_threads(threads)
    elif BACKEND == "tensorflow":
        from implementations import tf_support

        tf_support.set_threads(threads)
    # jax (XLA:CPU) has no thread setting of its own; compare.py caps it through the
    # environment (OMP/MKL/OpenBLAS) and the process's thread pools like every other run.


def device_scope(device: str):
    # On the torch backend, variables created inside keras.device() get no gradients
    # ("No gradients provided for any variable", Keras 3.15); that backend places on CUDA
    # by itself whenever there is one, so it gets no scope and device() refuses the
    # one case it cannot honour.
    return contextlib.nullcontext() if BACKEND == "torch" else keras.device(device)


def in_device(device: str, fn):
    def wrapped(*args):
        with device_scope(device):
            return fn(*args)

    return wrapped


def hooks(device: str, trainer) -> dict:
    """The Trainer fields the harness reads from Keras on `device`: the backend's barrier and profiler,
    and the trainer's own calls run inside the device scope."""
    return {"step": trainer.step and in_device(device, trainer.step), "run": trainer.run and in_device(device, trainer.run),
            "bare": trainer.bare and in_device(device, trainer.bare), "sync": sync(device), "profile": profiler(device)}


def profiler(device: str):
    """Trainer.profile for Keras: the backend's own profiler (torch.profiler, tf.profiler, jax.profiler)."""
    if BACKEND == "torch":
        import torch

        from implementations import torch_support

        return torch_support.profiler(torch.device("cuda" if device.startswith("gpu") else "cpu"))
    if BACKEND == "tensorflow":
        from implementations import tf_support

        return tf_support.profile
    from implementations import jax_support

    return jax_support.profile


# --- what the harness adds to fit: the step's loss and its clock ----------------------------------

class StepLossSequential(keras.Sequential):
    """keras.Sequential whose train step's logs carry that step's own loss as "step_loss" (fit's
    own "loss" log is the running mean over the epoch), through the two methods Keras documents
    for overriding what a train step computes: compute_loss and compute_metrics.

    On torch and tensorflow it is the very loss the step differentiated, kept from compute_loss:
    the step gains one stop_gradient, where a metric computing it again added five ops. On jax,
    compute_loss runs inside jax.grad's trace, whose values cannot leave it, so compute_metrics
    computes it again from the same y_pred, inside the same jitted step.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if BACKEND != "jax":
            # A new tensor every step, never written in place: fit's batch-end thread pool may
            # read this one after the next step has begun.
            self._step_loss = keras.ops.stop_gradient(loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        logs["step_loss"] = (super().compute_loss(x, y, y_pred, sample_weight, training=False)
                             if BACKEND == "jax" else self._step_loss)
        return logs


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


class MarkingClockCallback(keras.callbacks.Callback):
    """The lecture batch's clock: each step's end marked where fit would deliver it anyway.

    A callback with a batch-end hook makes fit run every batch end in its own loop, which turns
    off what fit does for a plain call on a thread-safe backend (jax, torch): hand batch ends to
    a thread pool and go on to the next step. async_safe keeps that: the mark is taken in the
    pool, once the step's loss is fetched there, and made laps at the end (StepClock.laps_from_marks).
    """

    async_safe = True

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.clock.start()

    def on_train_batch_end(self, batch, logs=None):
        if not self.clock.mark(batch, logs["step_loss"]):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.clock.laps_from_marks()  # fit has waited for its pool before on_train_end
