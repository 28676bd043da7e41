"""Launching one run in a fresh subprocess, with equal threads, and every way it can end as a row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from common.config import RunConfig
from common.result import RunResult
from common.runner import skipped

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def config_flags(cfg: RunConfig) -> list[str]:
    """The CLI flags that reproduce `cfg` in a child process (repr keeps floats exact)."""
    flags = []
    for name, value in cfg.to_dict().items():
        if name == "steps" and cfg.minibatch:
            continue  # derived from samples and epochs; the child refuses it alongside --samples
        flags += [f"--{name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
    return flags


def child_env(cfg: RunConfig, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every child: equal thread counts, set before any library loads."""
    return {**os.environ, **{name: str(cfg.threads) for name in THREAD_ENV}, **extra}


def run_one(impl, variant: str, cfg: RunConfig, timeout_s: float,
            extra_args: tuple[str, ...] = ()) -> RunResult:
    """One run in a fresh subprocess; any way it can fail becomes a row with the reason."""
    missing = impl.missing()
    if missing:
        return skipped(cfg, impl.framework, variant,
                       f"{', '.join(missing)} not installed: pip install -e '.[{impl.extra}]'")
    env = child_env(cfg, dict(impl.env))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        # --no-check: the parent judges every run against its one reference; the child need not.
        cmd = [sys.executable, "-m", impl.module, "--variant", variant, *config_flags(cfg), "--json", str(out),
               "--no-check", *extra_args]
        returncode, stderr = run_child(cmd, env, timeout_s)
        if returncode is None:
            return _failed(cfg, impl, variant, f"timed out after {timeout_s:g} s (--timeout)")
        if out.exists():
            try:
                return RunResult.from_json(out.read_text())
            except (ValueError, TypeError, KeyError) as exc:
                return _failed(cfg, impl, variant, f"its result file is unreadable: {exc}")
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        if returncode < 0:
            how = f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        else:
            how = f"exit status {returncode}"
        return _failed(cfg, impl, variant, f"{how}: {last}")


def run_child(cmd: list[str], env: dict, timeout_s: float) -> tuple[int | None, str]:
    """Run cmd in its own process group; (exit status, stderr), or (None, stderr) on timeout.

    On a timeout or an interrupt the whole group is killed: a framework's helper processes
    (compile workers, loader workers) must not outlive the run that started them.
    """
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
        return proc.returncode, stderr
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, proc.communicate()[1]
    except BaseException:  # Ctrl-C: no orphan left running
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _failed(cfg: RunConfig, impl, variant: str, reason: str) -> RunResult:
    result = skipped(cfg, impl.framework, variant, reason)
    result.status = "failed"
    return result
