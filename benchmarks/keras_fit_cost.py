"""What measuring Keras fit per step costs: fit with and without the harness's callback and step loss.

    KERAS_BACKEND=tensorflow python benchmarks/keras_fit_cost.py --repeats 7

compare.py times fit through a batch-end callback (a lap of the clock per step) and reads each
step's loss from fit's logs, where its model (keras_support.StepLossSequential) puts it. Both
can cost something: a batch-end callback makes Keras
turn the logs into Python numbers after every step, which waits for the step to finish, so fit
can no longer dispatch step k+1 while step k runs (JAX dispatches asynchronously; a callback
marked async_safe runs in a thread pool instead, on backends Keras deems thread-safe, which
excludes TensorFlow). This script times the combinations on
the lecture's problem, each as (fit of `--steps` + 20 steps) - (fit of 20 steps), in rotating
order, and prints each one's median ms per step and its ratio to plain fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (step loss in the logs, batch-end callback: None, "sync" as Keras runs a plain one, "async" with async_safe)
COMBINATIONS = [(False, None), (True, None), (False, "sync"), (True, "sync"), (True, "async")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="steps per timed fit (default 500)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the combinations (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: every core, as compare.py)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.exit(2, f"{parser.prog}: error: --steps and --repeats must be >= 1\n")

    import keras

    from common.config import RunConfig
    from common.timing import median
    from common.problem import make_problem
    from implementations import keras_api, keras_support
    from implementations.keras_support import BACKEND

    cfg = RunConfig() if args.threads is None else RunConfig(threads=args.threads)
    problem = make_problem(cfg)
    keras_support.set_threads(cfg.threads)
    keras.config.set_dtype_policy(cfg.dtype)
    keras.config.set_floatx(cfg.dtype)

    class Lap(keras.callbacks.Callback):  # what the harness's ClockCallback does, minus the fetch's use
        def on_train_batch_end(self, batch, logs=None):
            self.last = (time.perf_counter_ns(), logs.get("loss"))

    class AsyncLap(Lap):
        async_safe = True  # Keras runs it in a thread pool, after the step's logs are ready

    models = {step_loss: keras_api.make_model(problem, cfg.lr, cfg.dtype, step_loss=step_loss)
              for step_loss in (False, True)}

    def fit(step_loss: bool, callback: str | None, steps: int) -> float:
        start = time.perf_counter()
        models[step_loss].fit(keras_api.RepeatBatch(problem.x, problem.y, steps), epochs=1, verbose=0, shuffle=False,
                              callbacks={None: [], "sync": [Lap()], "async": [AsyncLap()]}[callback])
        return time.perf_counter() - start

    for step_loss, callback in COMBINATIONS:  # traces every train function once, untimed
        fit(step_loss, callback, 20)
    per_step: dict[tuple, list[float]] = {c: [] for c in COMBINATIONS}
    for r in range(args.repeats):
        for step_loss, callback in COMBINATIONS[r % len(COMBINATIONS):] + COMBINATIONS[:r % len(COMBINATIONS)]:
            per_step[(step_loss, callback)].append(
                (fit(step_loss, callback, args.steps + 20) - fit(step_loss, callback, 20)) / args.steps)
    plain = median(per_step[(False, None)])
    print(f"Keras {keras.__version__} on {BACKEND}, lecture size, {cfg.threads} threads, {args.steps} steps, "
          f"{args.repeats} rounds:")
    for (step_loss, callback), times in per_step.items():
        med = median(times)
        what = " + ".join(filter(None, ["step loss in logs" if step_loss else "",
                                         f"{callback} batch-end callback" if callback else ""]))
        print(f"  {what or 'plain fit':35s} {med * 1e3:.3f} ms/step (min {min(times) * 1e3:.3f}, max "
              f"{max(times) * 1e3:.3f}), x{med / plain:.3f} of plain fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
