"""RunConfig: the one configuration object, its validation, and the shared CLI."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu")

def _memory_limit_bytes() -> int:
    """Half the machine's physical memory: room for the framework's own copies of the arrays.

    Refusing before allocating beats dying in malloc (or in the OOM killer) mid-run.
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


MAX_PROBLEM_BYTES = _memory_limit_bytes()


class ConfigError(ValueError):
    """A configuration a person must fix; its message names the value and what is allowed."""


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run: sizes, optimisation, numerics, placement, timing."""

    batch: int = 64  # N
    d_in: int = 1000  # D_in
    hidden: int = 100  # H
    d_out: int = 10  # D_out
    steps: int = 500
    lr: float = 1e-6
    dtype: str = "float32"
    seed: int = 0
    device: str = "cpu"
    threads: int = field(default_factory=_default_threads)
    # Timed steps left out of the statistics (their times are still kept in the result);
    # step 1 is always counted as setup because it pays for lazy initialisation and tracing.
    warmup: int = 10

    def validate(self) -> "RunConfig":
        for name in ("batch", "d_in", "hidden", "d_out", "steps", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"--warmup must be an integer >= 0, got {self.warmup!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed!r}")
        if self.problem_bytes() > MAX_PROBLEM_BYTES:
            raise ConfigError(
                f"sizes N={self.batch} D_in={self.d_in} H={self.hidden} D_out={self.d_out} need about "
                f"{self.problem_bytes() / 2**30:.1f} GiB, more than the {MAX_PROBLEM_BYTES / 2**30:.0f} GiB allowed "
                "(half this machine's memory)"
            )
        return self

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 8

    def problem_bytes(self) -> int:
        """Rough working set: data, weights, activations and gradients, each about twice."""
        n, d, h, o = self.batch, self.d_in, self.hidden, self.d_out
        elements = n * d + n * o + 2 * (d * h + h * o) + 3 * n * h + 2 * n * o
        return 2 * elements * self.itemsize

    def flops_per_step(self) -> int:
        """Multiply-adds of the five matmuls of one SGD step, counted as 2 FLOPs each."""
        n, d, h, o = self.batch, self.d_in, self.hidden, self.d_out
        forward = n * d * h + n * h * o
        backward = h * n * o + n * o * h + d * n * h  # grad_w2, grad_h, grad_w1
        return 2 * (forward + backward)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class CliParser(argparse.ArgumentParser):
    """argparse with a one-line error: the bad value and what is allowed, exit status 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # argparse reads "-1e-6" as an option (its pattern lacks exponents), which would turn
        # "--lr -1e-6" into "expected one argument" instead of naming the bad value.
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags every entry point shares, one per RunConfig field."""
    d = RunConfig()
    g = parser.add_argument_group("problem and run")
    g.add_argument("--batch", "-N", type=int, default=d.batch, help=f"N, rows in the batch (default {d.batch})")
    g.add_argument("--d-in", type=int, default=d.d_in, help=f"D_in, input features (default {d.d_in})")
    g.add_argument("--hidden", "-H", type=int, default=d.hidden, help=f"H, hidden units (default {d.hidden})")
    g.add_argument("--d-out", type=int, default=d.d_out, help=f"D_out, outputs (default {d.d_out})")
    g.add_argument("--steps", type=int, default=d.steps, help=f"SGD steps (default {d.steps})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr:g})")
    g.add_argument("--dtype", default=d.dtype, help=f"one of {', '.join(DTYPES)} (default {d.dtype})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data and initial weights (default {d.seed})")
    g.add_argument("--threads", type=int, default=d.threads,
                   help=f"CPU threads for every framework (default: the cores this process may use, {d.threads})")
    g.add_argument("--warmup", type=int, default=d.warmup,
                   help=f"timed steps after step 1 left out of the statistics (default {d.warmup})")


def config_from_args(args: argparse.Namespace, device: str | None = None) -> RunConfig:
    """Build and validate a RunConfig from parsed flags (device given separately by compare.py)."""
    return RunConfig(
        batch=args.batch, d_in=args.d_in, hidden=args.hidden, d_out=args.d_out,
        steps=args.steps, lr=args.lr, dtype=args.dtype, seed=args.seed,
        device=device if device is not None else args.device,
        threads=args.threads, warmup=args.warmup,
    ).validate()
