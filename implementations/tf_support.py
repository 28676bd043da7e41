"""The plumbing every TensorFlow-based run shares (graphs, multi-worker, tf.data, Keras on TF):
log level, device, thread pools, sync.

TensorFlow's log level is set by the implementations package itself, before any of this loads.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import tensorflow as tf

from common.config import RunConfig
from common.timing import no_sync

v1 = tf.compat.v1


def device(cfg: RunConfig) -> str:
    """The run's device name; on a GPU with TF32 off, so that matmuls keep the reference's math."""
    if cfg.device == "cpu":
        return "/CPU:0"
    if not tf.config.list_physical_devices("GPU"):
        raise NotImplementedError("no GPU visible to TensorFlow")
    # TF32 rounds matmul inputs to 10 mantissa bits: fast, but no longer the reference's math.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return "/GPU:0"


def sync(device_name: str):
    """The device barrier the clock waits on before it stops."""
    return tf.test.experimental.sync_devices if device_name.startswith("/GPU") else no_sync


def asynchronous(device_name: str) -> dict:
    """Trainer fields: on a GPU a TF2 step returns before its kernels finish, so the clock times blocks
    of steps and fetches their losses in one transfer (common.timing); on the CPU TF runs each op to its end."""
    if not device_name.startswith("/GPU"):
        return {}
    return {"asynchronous": True, "fetch": lambda losses: tf.stack(losses).numpy().tolist()}


def set_threads(threads: int) -> None:
    """TF2's (eager, tf.function, Keras) thread pools, checked.

    TF sizes them once per process, before the first op; a later run in the same process
    with another count cannot have its own, and that is an error, never a silent mismatch.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised (several runs in one process, as in the tests): check below
    actual = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))  # 0: default
    if actual != threads:
        raise RuntimeError(f"TensorFlow already runs with {actual} threads in this process, not {threads}")


def session_config(threads: int) -> v1.ConfigProto:
    """TF1 Session thread pools, sized through the Session's ConfigProto as TF1 expects."""
    return v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)


@contextlib.contextmanager
def profile(folder: Path):
    """Trainer.profile for TF2 functions and Keras on TF: tf.profiler.experimental over what it
    wraps; its XSpace (kept under xplane/, which TensorBoard opens) converted to trace.json."""
    from implementations.xspace import write_trace_from

    logdir = folder / "xplane"
    tf.profiler.experimental.start(str(logdir))
    try:
        yield
    finally:
        tf.profiler.experimental.stop()
    write_trace_from(logdir, folder, "tf.profiler")


def traced_session(session: v1.Session):
    """A TF1 Session's run(fetches, feed_dict) and Trainer.profile for it: the Session's own tracer,
    FULL_TRACE step stats of every run() made inside the profile, written as trace.json."""
    traced = []  # while profiling: each step's RunMetadata
    profiling = {"on": False}

    def run(fetches, feed_dict=None):
        if not profiling["on"]:
            return session.run(fetches, feed_dict=feed_dict)
        traced.append(v1.RunMetadata())
        return session.run(fetches, feed_dict=feed_dict, run_metadata=traced[-1],
                           options=v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE))

    @contextlib.contextmanager
    def profile(folder: Path):
        from common.profiling import TRACE, run_metadata_events, write_trace

        profiling["on"] = True
        try:
            yield
        finally:
            profiling["on"] = False
        write_trace(folder / TRACE, run_metadata_events(traced), "tf.RunMetadata")

    return run, profile


def device_memory(device_name: str):
    """Trainer.device_memory: TensorFlow's own peak on the GPU, in MB (None on the CPU)."""
    if not device_name.startswith("/GPU"):
        return None
    return lambda: tf.config.experimental.get_memory_info(device_name.strip("/"))["peak"] / 2**20


def hooks(device_name: str) -> dict:
    """The Trainer fields the harness reads from TensorFlow on `device_name`, whichever variant
    (each variant's builder sets its own profiler: a Session's RunMetadata or TF2's profiler)."""
    return {"sync": sync(device_name), "device_memory": device_memory(device_name), **asynchronous(device_name)}
