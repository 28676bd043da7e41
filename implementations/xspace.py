"""Reading the XSpace files that tf.profiler and jax.profiler write (the proto ships with TensorFlow)."""

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
