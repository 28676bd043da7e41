"""The two-layer net in JAX: the lecture's static graph as composable function transformations.

- manual: jax.numpy with the hand-written backward pass (common/reference.py's), the step jitted:
          jit traces the Python function once into a graph and XLA compiles it.
- grad:   jax.value_and_grad of the loss: the gradients derived by transforming the function.
- scan:   every step inside one jitted lax.scan: one call for the whole training, JAX's answer
          to ONNX's Loop (step time = total / steps, as for onnx/loop).
- flax:   Flax NNX, JAX's module level: two bias-free nnx.Linear layers and optax.sgd.

Weights are donated to each step (donate_argnums), so XLA may update them in place; compilation
happens in build or step 1, which the harness counts as setup.
Run alone: python -m implementations.jax_transforms --variant grad --dtype float64
"""

from __future__ import annotations

import functools

from implementations import jax_x64  # noqa: F401  (float64's switch, before jax is imported)

import jax
import jax.numpy as jnp
import numpy as np

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import StepClock, Trainer
from implementations import jax_support


# --- the network and loss ---------------------------------------------------------------------

def loss_fn(w1, w2, x, y, compute_dtype=None):
    """`compute_dtype` (bf16-mixed: bfloat16): the weights and x cast to it for the matmuls, the loss
    back in y's float32; the gradients reach the float32 weights through the casts."""
    if compute_dtype is not None:
        w1, w2, x = w1.astype(compute_dtype), w2.astype(compute_dtype), x.astype(compute_dtype)
    y_pred = jnp.maximum(x @ w1, 0) @ w2
    diff = y_pred.astype(y.dtype) - y
    return jnp.sum(diff * diff)


def manual_step(x, y, w1, w2, lr):
    """One SGD step with the reference's hand-written backward pass; (loss, w1', w2')."""
    h = x @ w1
    h_relu = jnp.maximum(h, 0)
    y_pred = h_relu @ w2
    diff = y_pred - y
    loss = jnp.sum(diff * diff)

    grad_y_pred = 2.0 * diff
    grad_w2 = h_relu.T @ grad_y_pred
    grad_h = jnp.where(h < 0, 0, grad_y_pred @ w2.T)  # relu passes gradient only where it passed the input
    grad_w1 = x.T @ grad_h
    return loss, w1 - lr * grad_w1, w2 - lr * grad_w2


def grad_step(x, y, w1, w2, lr, compute_dtype=None):
    """The same step with the gradients from jax.value_and_grad of the loss."""
    loss, (grad_w1, grad_w2) = jax.value_and_grad(loss_fn, argnums=(0, 1))(w1, w2, x, y, compute_dtype)
    return loss, w1 - lr * grad_w1, w2 - lr * grad_w2


# --- the step of each variant -----------------------------------------------------------------

def _stepper(cfg: RunConfig, start: Start, step_fn) -> Trainer:
    # donate_argnums: the old weights' buffers may hold the new ones (no copy per step)
    jitted = jax.jit(step_fn, donate_argnums=(2, 3))
    state = {"w1": start.w1, "w2": start.w2}
    lr = jnp.asarray(cfg.lr, dtype=cfg.dtype)

    def step(x=start.x, y=start.y):  # minibatch mode passes each batch; else the lecture's one
        loss, state["w1"], state["w2"] = jitted(x, y, state["w1"], state["w2"], lr)
        return loss  # a device array: the harness's clock fetches it, a bare run does not

    return Trainer(step, sync=lambda: state["w2"].block_until_ready(),
                   weights=lambda: (np.asarray(state["w1"]), np.asarray(state["w2"])))


def build_manual(cfg: RunConfig, start: Start) -> Trainer:
    return _stepper(cfg, start, manual_step)


def build_grad(cfg: RunConfig, start: Start) -> Trainer:
    return _stepper(cfg, start, functools.partial(grad_step, compute_dtype=jax_support.compute_dtype(cfg)))


def build_scan(cfg: RunConfig, start: Start) -> Trainer:
    x, y, w1, w2 = start.x, start.y, start.w1, start.w2
    lr = jnp.asarray(cfg.lr, dtype=cfg.dtype)

    @functools.partial(jax.jit, static_argnums=4, donate_argnums=(2, 3))
    def train(x, y, w1, w2, steps):
        def body(weights, _):
            loss, *weights = grad_step(x, y, *weights, lr, jax_support.compute_dtype(cfg))
            return tuple(weights), loss

        weights, losses = jax.lax.scan(body, (w1, w2), None, length=steps)
        return (*weights, losses)

    state = {"w1": w1, "w2": w2}
    # Compiled ahead for this run's length (setup); the scan is a pure function of its inputs.
    compiled = {cfg.steps: train.lower(x, y, w1, w2, cfg.steps).compile()}

    def run(steps: int, clock: StepClock):
        if steps not in compiled:  # a profiled or warm-up call of another length compiles before the clock
            compiled[steps] = train.lower(x, y, state["w1"], state["w2"], steps).compile()
        clock.start()
        # Copies in: a donated input is consumed, and a later call (the profiler's) starts from the same weights
        state["w1"], state["w2"], losses = compiled[steps](x, y, jnp.copy(state["w1"]), jnp.copy(state["w2"]))
        clock.laps_evenly(np.asarray(losses))  # one call did every step: each gets total / steps

    return Trainer(run=run, sync=lambda: state["w2"].block_until_ready(),
                   weights=lambda: (np.asarray(state["w1"]), np.asarray(state["w2"])),
                   note="scan: one call ran every step; step time = total / steps")


def build_flax(cfg: RunConfig, start: Start) -> Trainer:
    try:
        import optax
        from flax import nnx
    except ImportError as exc:
        raise NotImplementedError(f"{exc.name} not installed: pip install -e '.[jax]'") from None

    class TwoLayerNet(nnx.Module):
        def __init__(self, w1, w2):
            d_in, h = w1.shape
            opts = {"use_bias": False, "dtype": w1.dtype, "param_dtype": w1.dtype, "rngs": nnx.Rngs(0)}
            self.linear1 = nnx.Linear(d_in, h, **opts)
            self.linear2 = nnx.Linear(h, w2.shape[1], **opts)
            self.linear1.kernel[...], self.linear2.kernel[...] = w1, w2  # the Problem's weights

        def __call__(self, x):
            return self.linear2(nnx.relu(self.linear1(x)))

    model = TwoLayerNet(start.w1, start.w2)
    optimizer = nnx.Optimizer(model, optax.sgd(jnp.asarray(cfg.lr, dtype=cfg.dtype)), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_of(model):
            diff = model(x) - y
            return jnp.sum(diff * diff)

        loss, grads = nnx.value_and_grad(loss_of)(model)
        optimizer.update(model, grads)
        return loss

    # Flax's performance guide: nnx.jit walks the module graph on every call; cached_partial
    # walks it once and keeps the flattened state between calls
    cached_step = nnx.cached_partial(train_step, model, optimizer)

    def step(x=start.x, y=start.y):
        return cached_step(x, y)

    return Trainer(step, sync=lambda: model.linear2.kernel[...].block_until_ready(),
                   weights=lambda: (np.asarray(model.linear1.kernel[...]), np.asarray(model.linear2.kernel[...])))


BUILDERS = {"manual": build_manual, "grad": build_grad, "scan": build_scan, "flax": build_flax}


# --- the feed (minibatch mode) ----------------------------------------------------------------

def make_feed(cfg: RunConfig, problem: Problem, device):
    """Minibatches in the shared order: taken on the device from the resident dataset with a
    jitted jnp.take, or NumPy batches (common.data: threads for prefetch, a memory map for disk)
    put on the device with jax.device_put."""
    if cfg.feed == "resident":
        x_all, y_all = jax.device_put(problem.x, device), jax.device_put(problem.y, device)
        order_on_device = [jax.device_put(rows, device) for rows in data.batch_order(cfg)]
        take = jax.jit(lambda rows: (jnp.take(x_all, rows, axis=0), jnp.take(y_all, rows, axis=0)))

        def resident_batches():
            for rows in order_on_device:
                yield take(rows)

        return resident_batches

    def host_batches():
        for x, y in data.feed_batches(cfg, problem):
            yield jax.device_put(x, device), jax.device_put(y, device)

    return host_batches


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    device = jax_support.start(cfg)
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, device, lambda a: jax.device_put(a, device))
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:  # every step gets its batch from the feed
        trainer = trainer._replace(feed=make_feed(cfg, problem, device))
    return trainer.with_hooks(**jax_support.hooks(device))


if __name__ == "__main__":
    from implementations.standalone import main

    main("jax", build)
