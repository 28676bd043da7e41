"""LiteRT (formerly TensorFlow Lite): the Keras model as the .tflite file Android and iOS apps load.

python -m deploy.litert --source litert --weights w.npz --model-dir models/ --json rows.json

Keras writes the file itself (model.export(path, format="litert")); ai-edge-litert's Interpreter,
LiteRT's own C++ core behind a thin Python binding, runs it twice: with its default XNNPACK
delegate, as an app gets it, and with the builtin kernels alone
(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES). Each is checked against the Keras model's own
forward pass on the serving batch.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.problem import make_serving_batch
from deploy.bench import DeployRow, load_time_s, parse_child, skip, timed_row

SOURCE = "litert"
MODEL = "keras_export.tflite"
# runtime label -> the interpreter's op resolver (ai_edge_litert.interpreter.OpResolverType)
# Measured with ai-edge-litert 2.3.0: the float64 model's first op is FlexMatMul, and allocate_tensors fails.
FLOAT64_REASON = ("LiteRT's builtin kernels have no float64 MatMul: the converter emits TensorFlow's own op "
                  "(FlexMatMul), which only the Flex delegate runs, and ai-edge-litert has none")
RESOLVERS = {"litert + XNNPACK": "AUTO", "litert, builtin kernels": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


def export(w1: np.ndarray, w2: np.ndarray, path: Path):
    """The Keras model of implementations/keras_api.py holding the weights, exported; returns its forward."""
    import keras

    from deploy.export import called_keras_model

    model = called_keras_model(w1, w2)
    model.export(str(path), format="litert", verbose=False)
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def interpreter(path: Path, resolver: str, threads: int, batch: int):
    """A LiteRT interpreter for `path`, its input resized to `batch` rows and its tensors allocated;
    returns run(x) -> y_pred."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    found = Interpreter(model_path=str(path), num_threads=threads,
                        experimental_op_resolver_type=getattr(OpResolverType, resolver))
    x_in, y_out = found.get_input_details()[0]["index"], found.get_output_details()[0]["index"]
    found.resize_tensor_input(x_in, [batch, found.get_input_details()[0]["shape"][1]])
    found.allocate_tensors()

    def run(x):
        found.set_tensor(x_in, x)
        found.invoke()
        return found.get_tensor(y_out)

    return run


def rows(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int, repeats: int,
         warmup: int) -> list[DeployRow]:
    path = model_dir / MODEL
    forward = export(w1, w2, path)
    size = path.stat().st_size
    found = []
    for batch in dict.fromkeys((1, len(x))):
        xb = np.ascontiguousarray(x[:batch])
        want = forward(xb)
        found.append(timed_row(path, SOURCE, "keras-tensorflow", forward, xb, None, warmup, repeats))
        for runtime, resolver in RESOLVERS.items():
            load_s = load_time_s(lambda: interpreter(path, resolver, threads, batch))  # noqa: B023
            found.append(timed_row(path, SOURCE, runtime, interpreter(path, resolver, threads, batch), xb, want,
                                   warmup, repeats, load_s, size))
    return found


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.litert", __doc__.splitlines()[0], argv, [SOURCE])
    if cfg.dtype != "float32":
        skip(FLOAT64_REASON)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)  # the Keras source's pool
    tf.config.threading.set_inter_op_parallelism_threads(1)
    found = rows(w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats, cfg.warmup)
    args.json.write_text(json.dumps([asdict(row) for row in found]))


if __name__ == "__main__":
    sys.exit(main())
