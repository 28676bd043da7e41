"""The registry: every implementation compare.py knows, without importing any framework.

Adding a framework = one module here (same shape as pytorch.py), one line below, its tests.
"""

from __future__ import annotations

from typing import NamedTuple


class Implementation(NamedTuple):
    framework: str  # the name users type: --frameworks torch
    module: str  # runnable as python -m <module>
    variants: tuple[str, ...]  # must equal the module's VARIANTS (a test checks)
    requires: tuple[str, ...]  # importable packages it needs
    extra: str | None  # pip extra that installs them


REGISTRY: dict[str, Implementation] = {
    "numpy": Implementation("numpy", "common.reference", ("manual",), ("numpy",), None),
    "torch": Implementation("torch", "implementations.pytorch",
                            ("tensors", "autograd", "module", "compile"), ("torch",), "torch"),
    "tensorflow": Implementation("tensorflow", "implementations.tensorflow_graphs",
                                 ("feed", "variables", "optimizer", "function", "xla"), ("tensorflow",),
                                 "tensorflow"),
}


def missing_packages(impl: Implementation) -> list[str]:
    """Packages of `impl` that are not importable here (found without importing them)."""
    from importlib.util import find_spec

    return [name for name in impl.requires if find_spec(name) is None]
