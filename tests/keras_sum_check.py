"""Run in a subprocess per Keras backend: one train_on_batch against the reference's math.

Prints JSON: the model's loss and its first SGD update, each as the relative error against
the NumPy reference's loss and `w - lr * grad`, plus what Keras' default MSE loss reports, and
how far fit's running-mean "loss" log is from the mean of the "step_loss" logs the harness reads.
"""

import json
import sys

import numpy as np

from common.config import RunConfig
from common.problem import make_problem
from common.reference import loss_and_grads
from implementations import keras_api


def main(dtype: str) -> None:
    import keras

    cfg = RunConfig(dtype=dtype, steps=1)
    problem = make_problem(cfg)
    keras.config.set_dtype_policy(dtype)
    keras.config.set_floatx(dtype)
    model = keras_api.make_model(problem, cfg.lr, dtype, step_loss=True)
    loss = model.train_on_batch(problem.x, problem.y, return_dict=True)["loss"]
    w1, w2 = model.get_weights()

    ref_loss, grad_w1, grad_w2 = loss_and_grads(*problem)
    lr = np.dtype(dtype).type(cfg.lr)
    err = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())  # noqa: E731

    # fit's own "loss" log after k steps is the mean of the k losses it differentiated: the
    # step losses the harness reads must average to it, step by step.
    seen = []

    class Logs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((float(logs["step_loss"]), float(logs["loss"])))

    keras_api.make_model(problem, cfg.lr, dtype, step_loss=True).fit(
        keras_api.RepeatBatch(problem.x, problem.y, 5), epochs=1, verbose=0, shuffle=False, callbacks=[Logs()])
    steps = np.array([step for step, _ in seen])
    running_mean_err = max(abs(steps[:k + 1].mean() - mean) / mean for k, (_, mean) in enumerate(seen))

    default_mse = keras.losses.MeanSquaredError()(problem.y, model.predict(problem.x, verbose=0))
    print(json.dumps({
        "loss_err": err(np.float64(loss), ref_loss),
        "w1_err": err(w1, problem.w1 - lr * grad_w1),
        "w2_err": err(w2, problem.w2 - lr * grad_w2),
        "default_mse_over_sum": float(default_mse) / float(loss),
        "step_loss_first": seen[0][0] == float(loss),
        "running_mean_err": float(running_mean_err),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
