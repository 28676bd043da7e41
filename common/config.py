"""RunConfig: the one configuration object, its validation, and the shared CLI."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field

DTYPES = ("float32", "float64")
# full: every op in --dtype. bf16-mixed: float32 master weights, the matmuls in bfloat16 with float32
# accumulation, the loss and the update in float32 (docs/mixed-precision.md).
PRECISIONS = ("full", "bf16-mixed")
DEVICES = ("cpu", "gpu")
# How minibatches reach the step (see common/data.py): on the device before step 1, copied
# there every step, prepared ahead by background workers, read from memory-mapped .npy files.
FEEDS = ("resident", "copy", "prefetch", "disk")
PIN_MEMORY = ("auto", "on", "off")

def _memory_limit_bytes() -> int:
    """Half the machine's physical memory: room for the framework's own copies of the arrays.

    Refusing before allocating beats dying in malloc (or in the OOM killer) mid-run.
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


MAX_PROBLEM_BYTES = _memory_limit_bytes()
# What a framework holds for itself while it trains, beyond the problem's arrays (compiled code,
# allocator pools, workspaces): measured with `python compare.py --sweep --sweep-steps 10` on
# 2026-11-29 as 9-121 MB at the lecture's size (keras-jax the most), on top of its import.
FRAMEWORK_ALLOWANCE_BYTES = 128 * 2**20


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
    precision: str = "full"
    seed: int = 0
    device: str = "cpu"
    threads: int = field(default_factory=_default_threads)
    # Timed steps left out of the statistics (their times are still kept in the result);
    # step 1 is always counted as setup because it pays for lazy initialisation and tracing.
    warmup: int = 10
    # Minibatch mode: a dataset of `samples` rows (0: the lecture's one full batch), shuffled
    # every epoch in an order shared by every implementation; steps = epochs * (samples // batch).
    samples: int = 0
    epochs: int = 1
    feed: str = "resident"
    loader_workers: int = 1  # background workers of the prefetch feed
    pin_memory: str = "auto"  # DataLoader pin_memory: auto = on for the GPU
    # Data-parallel processes (distributed engines only): each takes N/workers rows of every
    # batch and `threads` are shared out among them, so every run uses the same cores.
    workers: int = 1
    # A profiled run (--profile): the framework's profiler set up where it must be chosen at
    # build time (ONNX Runtime's sessions); such a run's times never enter the statistics.
    profile: bool = False

    def __post_init__(self):
        # In minibatch mode the step count follows from the data; one source of truth.
        if self.minibatch and isinstance(self.batch, int) and self.batch >= 1 and isinstance(self.epochs, int):
            object.__setattr__(self, "steps", self.epochs * (self.samples // self.batch))

    @property
    def minibatch(self) -> bool:
        return isinstance(self.samples, int) and self.samples > 0

    @property
    def rows(self) -> int:
        """Rows of the dataset: M in minibatch mode, else the lecture's N."""
        return self.samples if self.minibatch else self.batch

    @property
    def worker_threads(self) -> int:
        """Threads of each data-parallel worker: the run's threads shared out, at least one."""
        return max(1, self.threads // self.workers)

    @property
    def steps_per_epoch(self) -> int:
        return self.samples // self.batch if self.minibatch else 1

    def validate(self) -> "RunConfig":
        # Minibatch settings first: steps is derived from them, and a bad one shows up as steps=0
        if not isinstance(self.samples, int) or self.samples < 0:
            raise ConfigError(f"--samples must be an integer >= 0, got {self.samples!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"--epochs must be an integer >= 1, got {self.epochs!r}")
        if self.minibatch and isinstance(self.batch, int) and self.samples < self.batch:
            raise ConfigError(f"--samples (M={self.samples}) must be at least --batch (N={self.batch})")
        for name in ("batch", "d_in", "hidden", "d_out", "steps", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"--workers must be an integer >= 1, got {self.workers!r}")
        if self.batch % self.workers:
            raise ConfigError(f"--workers {self.workers} must divide --batch N={self.batch}: each worker takes "
                              "an equal slice of every batch")
        if self.feed not in FEEDS:
            raise ConfigError(f"--feed must be one of {', '.join(FEEDS)}, got {self.feed!r}")
        if not isinstance(self.loader_workers, int) or self.loader_workers < 1:
            raise ConfigError(f"--loader-workers must be an integer >= 1, got {self.loader_workers!r}")
        if self.pin_memory not in PIN_MEMORY:
            raise ConfigError(f"--pin-memory must be one of {', '.join(PIN_MEMORY)}, got {self.pin_memory!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"--warmup must be an integer >= 0, got {self.warmup!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "bf16-mixed" and self.dtype != "float32":
            raise ConfigError(f"--precision bf16-mixed keeps float32 master weights: it needs --dtype float32, "
                              f"got {self.dtype}")
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed!r}")
        if self.run_bytes() > MAX_PROBLEM_BYTES:
            raise ConfigError(
                f"sizes N={self.batch} D_in={self.d_in} H={self.hidden} D_out={self.d_out} need about "
                f"{self.run_bytes() / 2**30:.1f} GiB, more than the {MAX_PROBLEM_BYTES / 2**30:.0f} GiB allowed "
                "(half this machine's memory)"
            )
        return self

    @property
    def numerics(self) -> str:
        """What a row's dtype column says and what it is judged as: the dtype, or bf16-mixed."""
        return self.dtype if self.precision == "full" else self.precision

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 8

    def problem_bytes(self) -> int:
        """Rough working set: data, weights, activations and gradients, each about twice."""
        n, d, h, o = self.batch, self.d_in, self.hidden, self.d_out
        elements = self.rows * (d + o) + n * d + n * o + 2 * (d * h + h * o) + 3 * n * h + 2 * n * o
        return 2 * elements * self.itemsize

    def run_bytes(self) -> int:
        """What a run holds beyond its framework's import: the working set and the framework's own
        allowance. Checked against the sweep's measured peaks (docs/measurement.md: within 0.74-0.92x of the
        largest run at every ladder size, an upper estimate)."""
        return self.problem_bytes() + FRAMEWORK_ALLOWANCE_BYTES

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
    g.add_argument("--steps", type=int, default=None,
                   help=f"SGD steps (default {d.steps}; with --samples: epochs x samples/N, not settable)")
    g.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr:g})")
    g.add_argument("--dtype", default=d.dtype, help=f"one of {', '.join(DTYPES)} (default {d.dtype})")
    g.add_argument("--precision", default=d.precision,
                   help=f"one of {', '.join(PRECISIONS)}: bf16-mixed keeps float32 weights and computes the matmuls "
                        f"in bfloat16; compare.py also takes a comma list (default {d.precision}; see "
                        "docs/mixed-precision.md)")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data and initial weights (default {d.seed})")
    g.add_argument("--threads", type=int, default=d.threads,
                   help=f"CPU threads for every framework (default: the cores this process may use, {d.threads})")
    g.add_argument("--warmup", type=int, default=d.warmup,
                   help=f"timed steps after step 1 left out of the statistics (default {d.warmup})")
    g.add_argument("--workers", type=int, default=d.workers,
                   help="data-parallel worker processes of torch DDP / tf.distribute, each on N/W rows of the "
                        "batch, sharing --threads (default 1; see docs/data-parallel.md)")
    m = parser.add_argument_group("minibatch mode (default: the lecture's one full batch, every step)")
    m.add_argument("--samples", "-M", type=int, default=d.samples,
                   help="M, rows in the dataset; each step trains on the next N of them in a shuffled order "
                        "shared by every framework (a last partial batch is dropped)")
    m.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the dataset (default {d.epochs})")
    m.add_argument("--feed", default=d.feed,
                   help=f"how batches reach the step: {', '.join(FEEDS)}; compare.py also takes a comma list or "
                        f"all (default {d.feed}; see docs/feeding-the-data.md)")
    m.add_argument("--loader-workers", type=int, default=d.loader_workers,
                   help="background workers of the prefetch feed: DataLoader num_workers, tf.data parallel "
                        f"calls, NumPy threads (default {d.loader_workers})")
    m.add_argument("--pin-memory", default=d.pin_memory,
                   help=f"PyTorch DataLoader pin_memory: {', '.join(PIN_MEMORY)} (default auto: on for the GPU)")


def config_from_args(args: argparse.Namespace, device: str | None = None, feed: str | None = None,
                     precision: str | None = None) -> RunConfig:
    """Build and validate a RunConfig from parsed flags (device, feed and precision given separately by compare.py)."""
    if args.samples and args.steps is not None:
        raise ConfigError("--steps cannot be set with --samples: steps = epochs x (samples // batch); use --epochs")
    return RunConfig(
        batch=args.batch, d_in=args.d_in, hidden=args.hidden, d_out=args.d_out,
        steps=RunConfig.steps if args.steps is None else args.steps, lr=args.lr, dtype=args.dtype, seed=args.seed,
        precision=precision if precision is not None else args.precision,
        device=device if device is not None else args.device,
        threads=args.threads, warmup=args.warmup, samples=args.samples, epochs=args.epochs,
        feed=feed if feed is not None else args.feed, loader_workers=args.loader_workers,
        pin_memory=args.pin_memory, workers=args.workers,
    ).validate()
