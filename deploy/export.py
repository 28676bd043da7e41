"""Export trained weights to ONNX: our own predict_net, and each framework's own exporter.

Each exporter (w1, w2, model_dir, threads) returns (path, forward): the checked .onnx file and the
source's own forward pass, so the ONNX Runtime output can be compared with the framework that
produced it. Each native_* (w1, w2, model_dir) returns (path, load): the source's own saved
format and load(), which reads it back into a model ready to run. The registry's Exporter names
which of them a framework has; frameworks are imported inside the function that needs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def numpy_forward(w1: np.ndarray, w2: np.ndarray):
    """The reference's forward pass (common/reference.py) with fixed weights."""
    return lambda x: np.maximum(x @ w1, 0) @ w2


def export_predict_net(w1: np.ndarray, w2: np.ndarray, model_dir: Path, threads: int):
    """predict_net.onnx built with onnx.helper; its source is the NumPy forward pass (its threads
    are the BLAS pool's, which the caller limits)."""
    from implementations.onnx_runtime import predict_net
    from implementations.onnx_support import save_checked

    return save_checked(predict_net(w1, w2), model_dir / "predict_net.onnx"), numpy_forward(w1, w2)


def export_torch(w1: np.ndarray, w2: np.ndarray, model_dir: Path, threads: int):
    """torch.onnx.export (the torch.export-based exporter) of the `module` variant's nn.Sequential."""
    import onnx
    import torch

    from implementations import torch_support
    from implementations.pytorch import make_sequential

    torch_support.set_threads(threads)  # its own pool: the source's forward runs in it

    model = make_sequential(torch.tensor(w1), torch.tensor(w2)).eval()
    path = model_dir / "torch_export.onnx"
    example = torch.zeros(2, w1.shape[0], dtype=model[0].weight.dtype)
    torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["x"], output_names=["y_pred"],
                      dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
    onnx.checker.check_model(str(path), full_check=True)

    def forward(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return path, forward


def export_keras(w1: np.ndarray, w2: np.ndarray, model_dir: Path, threads: int):
    """Keras' model.export(format="onnx") (tf2onnx on the TensorFlow backend)."""
    import keras
    import onnx

    model = called_keras_model(w1, w2)
    path = model_dir / "keras_export.onnx"
    model.export(str(path), format=path.suffix[1:], verbose=False)  # the file's format, ONNX
    onnx.checker.check_model(str(path), full_check=True)
    return path, lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def called_keras_model(w1: np.ndarray, w2: np.ndarray):
    """implementations/keras_api.py's model holding the weights, in their dtype, called once (export
    needs a model that has been called)."""
    import keras

    from common.problem import Problem
    from implementations.keras_api import make_model

    dtype = str(w1.dtype)
    keras.config.set_dtype_policy(dtype)
    keras.config.set_floatx(dtype)
    empty = np.zeros((1, 1), dtype)
    model = make_model(Problem(empty, empty, w1, w2), lr=1.0, dtype=dtype)
    model(np.zeros((1, w1.shape[0]), dtype))
    return model


def native_predict_net(w1: np.ndarray, w2: np.ndarray, model_dir: Path):
    """Its source is NumPy: the weights are the model, as an .npz."""
    path = model_dir / "weights_native.npz"
    np.savez(path, w1=w1, w2=w2)

    def load():
        with np.load(path) as saved:
            return numpy_forward(saved["w1"], saved["w2"])

    return path, load


def native_torch(w1: np.ndarray, w2: np.ndarray, model_dir: Path):
    """A state_dict, torch's documented way to save a model for inference."""
    import torch

    from implementations.pytorch import make_sequential

    path = model_dir / "torch_state_dict.pt"
    torch.save(make_sequential(torch.tensor(w1), torch.tensor(w2)).state_dict(), path)

    def load():
        model = make_sequential(torch.zeros(w1.shape, dtype=torch.float64 if w1.dtype == np.float64 else None),
                                torch.zeros(w2.shape, dtype=torch.float64 if w2.dtype == np.float64 else None))
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()

    return path, load


def native_keras(w1: np.ndarray, w2: np.ndarray, model_dir: Path):
    """Keras' native .keras archive."""
    import keras

    from common.problem import Problem
    from implementations.keras_api import make_model

    empty = np.zeros((1, 1), w1.dtype)
    path = model_dir / "keras_model.keras"
    make_model(Problem(empty, empty, w1, w2), lr=1.0, dtype=str(w1.dtype)).save(path)
    return path, lambda: keras.models.load_model(path, compile=False)
