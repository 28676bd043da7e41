"""The registry: every implementation compare.py knows, without importing any framework.

Adding a framework = one module here (same shape as pytorch.py), one line below, its tests.
"""

from __future__ import annotations

from typing import NamedTuple


class Distributed(NamedTuple):
    """A framework's data-parallel engine: its module, variant name and how workers start."""

    module: str
    variant: str
    launcher: str  # "torchrun" or "tf_config" (common/launch.py)


class Implementation(NamedTuple):
    framework: str  # the name users type: --frameworks torch
    module: str  # runnable as python -m <module>
    variants: tuple[str, ...]  # must equal the module's VARIANTS (a test checks)
    requires: tuple[str, ...]  # importable packages it needs
    extra: str | None  # pip extra that installs them
    env: tuple[tuple[str, str], ...] = ()  # set in the child before it starts (Keras' backend)
    # Variants that train on minibatches (--samples); the first is compare.py's default there.
    minibatch: tuple[str, ...] = ()
    distributed: Distributed | None = None  # what compare.py --workers W runs

    def missing(self) -> list[str]:
        """Packages this implementation needs that are not importable here (found without importing)."""
        from importlib.util import find_spec

        return [name for name in self.requires if find_spec(name) is None]


REGISTRY: dict[str, Implementation] = {
    "numpy": Implementation("numpy", "common.reference", ("manual",), ("numpy",), None, minibatch=("manual",)),
    "torch": Implementation("torch", "implementations.pytorch",
                            ("tensors", "autograd", "module", "compile"), ("torch",), "torch",
                            minibatch=("module", "tensors", "autograd", "compile"),
                            distributed=Distributed("implementations.pytorch_ddp", "ddp", "torchrun")),
    "tensorflow": Implementation("tensorflow", "implementations.tensorflow_graphs",
                                 ("feed", "variables", "optimizer", "function", "xla"), ("tensorflow",),
                                 "tensorflow", minibatch=("function", "xla"),
                                 distributed=Distributed("implementations.tensorflow_multiworker", "multiworker",
                                                         "tf_config")),
    "onnx": Implementation("onnx", "implementations.onnx_runtime", ("step", "loop"), ("onnx", "onnxruntime"), "onnx",
                           minibatch=("step",)),
}

# Keras 3 picks its backend from KERAS_BACKEND at import, so each backend is its own entry
# (the table's "keras-torch" row is Keras on the torch backend); "--frameworks keras" means all.
for _backend in ("tensorflow", "torch", "jax"):
    REGISTRY[f"keras-{_backend}"] = Implementation(
        f"keras-{_backend}", "implementations.keras_api", ("fit", "train_on_batch"), ("keras", _backend),
        "keras" if _backend == "tensorflow" else f"keras,{_backend}", (("KERAS_BACKEND", _backend),),
        minibatch=("fit",))

ALIASES = {"keras": [name for name in REGISTRY if name.startswith("keras-")]}
