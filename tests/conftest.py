"""Shared test helpers: small configs and running the real CLIs as a user would."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent


def small_config(**overrides) -> RunConfig:
    """A few steps of a small net: fast, yet every matmul has a non-trivial shape."""
    values = dict(batch=8, d_in=20, hidden=6, d_out=3, steps=30, lr=1e-3, warmup=2)  # threads: all, as TF needs
    values.update(overrides)
    return RunConfig(**values).validate()


def pytest_configure(config):
    """Every child of the suite writes its temporary files into one folder, removed at the end: a
    child that a test kills (an interrupt, a timeout, a dead host) cannot clean up after itself,
    and TensorFlow's autograph files or a browser's singleton folder would stay in /tmp."""
    import os
    import tempfile

    tempfile.gettempdir()  # this process (pytest's tmp_path included) keeps the usual place
    config.stash[_CHILDREN_TMP] = os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="fourways-tests-")


def pytest_unconfigure(config):
    import shutil

    if _CHILDREN_TMP in config.stash:
        shutil.rmtree(config.stash[_CHILDREN_TMP], ignore_errors=True)


_CHILDREN_TMP = pytest.StashKey[str]()


def foreground_signals() -> None:
    """preexec_fn of a child that a test will signal: SIGINT, SIGTERM and SIGHUP at their defaults, as
    in a job started from a terminal's foreground, whatever this test process inherited. A background
    job (`cmd &`, nohup) starts with SIGINT ignored, its children inherit that, and Python then installs
    no KeyboardInterrupt handler: a test that sends Ctrl-C would be testing how pytest was started."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def spawn(*args: str, env: dict | None = None, ignore: tuple = ()) -> subprocess.Popen:
    """`python <args>` from the project root, in a session of its own, with foreground_signals (then
    the signals in `ignore` ignored, to start it as a background job or nohup would). The `spawned`
    fixture kills what is left of it."""
    def dispositions():
        foreground_signals()
        for signum in ignore:
            signal.signal(signum, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=dispositions)
    _SPAWNED.append(proc)
    return proc


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def spawned():
    """After every test: whatever spawn() started, and every process below it, killed, even when the
    test failed half-way (a hanging helper must not outlive the suite)."""
    yield
    from common.launch import kill_tree

    while _SPAWNED:
        proc = _SPAWNED.pop()
        kill_tree(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def gone(pid: int) -> bool:
    """Not running (a zombie waiting for its reaper has ended too)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python <args>` from the project root and capture text output."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def train(name: str, cfg: RunConfig, variant: str | None = None, problem=None, **outputs):
    """One run of the registry's `name` in this process, as its module's command line runs it."""
    import importlib

    from common.runner import run_guarded
    from implementations import REGISTRY

    impl = REGISTRY[name]
    missing = impl.missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[{impl.extra}]'")
    module = importlib.import_module(impl.module)
    # The tests run many frameworks in one process, which compare.py never does. torch's
    # DataLoader forks its workers from it, and a worker that collects garbage left by an
    # earlier test (a TensorFlow function, whose finalizer takes a lock of TF's eager context,
    # held by some thread at the fork) hangs there for good. Collected here, it is gone before
    # any fork.
    gc.collect()
    build = module.build if problem is None else (lambda cfg, _, variant: module.build(cfg, problem, variant))
    return run_guarded(cfg, impl, variant or impl.variants[0], build, **outputs)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def references():
    """The reference run of cfg and its rounding noise (common.noise.measure), once per configuration."""
    from common.problem import make_problem
    from common import noise

    cache = {}

    def get(cfg: RunConfig) -> list[float]:
        if cfg not in cache:
            cache[cfg] = noise.measure(cfg, make_problem(cfg))
        return cache[cfg]

    return get
