"""The plumbing of ONNX Runtime runs (training, deploy): checked files, sessions, threads, devices."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from common.config import RunConfig

OPSET = 17  # every op used here exists unchanged since opset 13; 17 is what ORT 1.x fully covers
ELEM_TYPE = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}


def model_of(graph: onnx.GraphProto) -> onnx.ModelProto:
    """The graph as a model every ONNX Runtime 1.x can load."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fourways")
    model.ir_version = 8  # readable by every ONNX Runtime released since 2021
    return model


def value(name: str, dtype: str, shape) -> onnx.ValueInfoProto:
    """A typed graph input or output."""
    return helper.make_tensor_value_info(name, ELEM_TYPE[dtype], shape)


def save_checked(model: onnx.ModelProto, path: Path) -> Path:
    """Write `model` and check the file itself, with shape inference (full_check)."""
    onnx.save(model, path)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def session_options(threads: int) -> ort.SessionOptions:
    """Both of ORT's thread pools sized to the run's threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    return options


def providers(device: str) -> list[str]:
    """The execution provider of the run's device; NotImplementedError (a skip) when this ORT lacks it."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise NotImplementedError("the installed onnxruntime has no CUDAExecutionProvider")
    return ["CUDAExecutionProvider"]


def load_session(path: Path, cfg: RunConfig, profiled: bool = False) -> ort.InferenceSession:
    """A session on the model file at `path`, as Caffe2 ran its nets from files. `profiled`:
    ORT's profiler records from the session's creation on (it cannot be switched on later)."""
    options = session_options(cfg.threads)
    if profiled:
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), options, providers=providers(cfg.device))


def profiler(session: ort.InferenceSession):
    """Trainer.profile for a session made with profiled=True: ORT's own Chrome trace, cut to the
    events from the moment the context is entered (step 1 and the warm-up ran before)."""
    from common.profiling import TRACE, tag_trace

    @contextlib.contextmanager
    def profile(folder: Path):
        # ORT's event times are microseconds from the profiler's start, which it gives in ns since
        # the epoch (its docstring's "comparable to time.monotonic_ns()" does not hold on Linux)
        since_us = (time.time_ns() - session.get_profiling_start_time_ns()) / 1e3
        yield
        written = Path(session.end_profiling())
        shutil.move(written, folder / TRACE)
        tag_trace(folder / TRACE, "onnxruntime", keep=lambda events: [e for e in events if e.get("ts", 0) >= since_us])

    return profile


def ort_device(cfg: RunConfig) -> str:
    return "cuda" if cfg.device == "gpu" else "cpu"


def on_device(cfg: RunConfig, array: np.ndarray) -> ort.OrtValue:
    """A copy of `array` on the run's device, for IOBinding."""
    return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), ort_device(cfg), 0)


def empty_on_device(cfg: RunConfig, shape: list[int], dtype) -> ort.OrtValue:
    """A buffer on the run's device that a step or a feed writes into."""
    return ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, ort_device(cfg), 0)


class Workspace:
    """Where a run's nets live and run, as in Caffe2's workspace: a folder they are written to and
    loaded back from as files, the run's device, and the training net's session, whose profile the
    harness reads. Its hooks() are the Trainer fields that save, profile and remove it."""

    def __init__(self, cfg: RunConfig):
        providers(cfg.device)  # refuse before writing anything when there is no such device
        self.cfg = cfg
        self.folder = Path(tempfile.mkdtemp(prefix="fourways-onnx-"))
        self.training = None

    def load(self, model: onnx.ModelProto, name: str, trains: bool = False) -> ort.InferenceSession:
        """`model` written to the folder as `name`, checked, and a session on that file. `trains`: the
        net whose steps are timed (profiled from its creation when the run is)."""
        session = load_session(save_checked(model, self.folder / name), self.cfg, profiled=trains and self.cfg.profile)
        if trains:
            self.training = session
        return session

    def put(self, array: np.ndarray) -> ort.OrtValue:
        return on_device(self.cfg, array)

    def empty(self, shape: list[int], dtype) -> ort.OrtValue:
        return empty_on_device(self.cfg, shape, dtype)

    def hooks(self, deploy: Callable[[], onnx.ModelProto]) -> dict:
        """Trainer fields: save writes every net that ran and `deploy()` (the trained model) as
        predict_net.onnx; close removes the folder; profile, when profiled, is ORT's own."""
        def save(folder: Path) -> None:
            for path in self.folder.glob("*.onnx"):
                shutil.copy(path, folder / path.name)
            save_checked(deploy(), folder / "predict_net.onnx")

        fields = {"save": save, "close": lambda: shutil.rmtree(self.folder, ignore_errors=True)}
        if self.cfg.profile and self.training is not None:
            fields["profile"] = profiler(self.training)
        return fields
