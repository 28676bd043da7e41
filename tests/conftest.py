"""Shared test helpers: small configs and running the real CLIs as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent


def small_config(**overrides) -> RunConfig:
    """A few steps of a small net: fast, yet every matmul has a non-trivial shape."""
    values = dict(batch=8, d_in=20, hidden=6, d_out=3, steps=30, lr=1e-3, threads=1, warmup=2)
    values.update(overrides)
    return RunConfig(**values).validate()


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python <args>` from the project root and capture text output."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def references():
    """reference_losses(cfg), computed once per configuration for the whole session."""
    from common.problem import make_problem
    from common.reference import reference_losses

    cache = {}

    def get(cfg: RunConfig) -> list[float]:
        if cfg not in cache:
            cache[cfg] = reference_losses(cfg, make_problem(cfg))
        return cache[cfg]

    return get
