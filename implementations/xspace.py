"""The XSpace files that tf.profiler and jax.profiler write (the proto ships with TensorFlow), as trace.json."""

from __future__ import annotations

from pathlib import Path


def read_xspace(folder: Path):
    """The XSpace written under `folder` (plugins/profile/<run>/<host>.xplane.pb); the newest if several."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(Path(folder).rglob("*.xplane.pb"))
    if not files:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {folder}")
    xspace = xplane_pb2.XSpace()
    xspace.ParseFromString(files[-1].read_bytes())
    return xspace


def write_trace_from(logdir: Path, folder: Path, profiler: str) -> None:
    """folder/trace.json (common.profiling's format) from the XSpace a profiler wrote under logdir."""
    from common.profiling import TRACE, write_trace, xspace_events

    write_trace(folder / TRACE, xspace_events(read_xspace(logdir)), profiler)
