"""RunResult: what one run produced, with a lossless JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from common.timing import median

# Of results.json; bump on any change a reader of an older file would misread. 2: runs are judged
# against the rounding noise of correct runs (x_noise, weights_x_noise); version 1 files still load.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
STATUSES = ("ok", "mismatch", "skipped", "failed", "diverged")

# Strict JSON has no NaN or infinity; a diverged run's last loss is one, so spell them out.
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _decode_float(value: float | str) -> float:
    return _NON_FINITE[value] if isinstance(value, str) else float(value)


@dataclass
class RunResult:
    """One (framework, variant, device) run: raw losses and step times, kept whole."""

    framework: str
    variant: str
    device: str
    dtype: str
    config: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    # One entry per SGD step, step 1 included; statistics skip step 1 and `config.warmup` more.
    step_times_s: list[float] = field(default_factory=list)
    # Building the model/graph/session, compiling, tracing, plus the first step.
    setup_s: float | None = None
    threads: int | None = None
    versions: dict = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    max_rel_err: float | None = None  # |loss - ref| / |ref| at worst_step
    worst_step: int | None = None  # 1-based step of the worst x_noise (version 1: of max_rel_err)
    x_noise: float | None = None  # the worst step's |loss - ref| in units of that step's rounding noise
    weights_x_noise: float | None = None  # the final weights' error in units of their rounding noise
    note: str | None = None  # how to read this row's times, when it differs from the others
    # compare.py's rounds: each round's step_times_s (step_times_s is round 1's); [] for one run
    round_step_times_s: list[list[float]] = field(default_factory=list)
    round_setup_s: list[float] = field(default_factory=list)
    # Minibatch mode: the feed, and the part of each step spent getting its batch (else [])
    feed: str | None = None
    data_times_s: list[float] = field(default_factory=list)
    round_data_times_s: list[list[float]] = field(default_factory=list)
    world_size: int = 1  # processes that trained together (data-parallel); rank 0 reports
    comm_s: float | None = None  # data-parallel: median time of one step's collectives, timed alone
    # The same steps with no per-step clock, callback or loss fetch, total / steps; harness_cost is
    # the timed steps' mean over it, minus 1 (None: not measured, or the run does every step in one call)
    bare_step_s: float | None = None
    harness_cost: float | None = None
    round_harness_cost: list[float] = field(default_factory=list)
    # Each lapped/bare pair's cost (timing.harness_cost), every round's: the row's harness_cost is
    # their median, so that three rounds of 10 pairs judge it, not the middle round's 10 alone
    harness_pair_costs: list[float] = field(default_factory=list)
    harness_why: str = ""  # the implementation's word (its registry entry) on why that cost is what it is
    # What the run cost besides step time (common.memory): seconds from the process's start to its
    # framework imported (the interpreter's start-up included), building, step 1 alone; resident MB
    # after the import, after build() (before step 1), and at the most (VmHWM, after the timed steps);
    # the framework's own peak device memory on a GPU. None where not measured (in-process runs).
    start_s: float | None = None
    build_s: float | None = None
    first_step_s: float | None = None
    import_mb: float | None = None
    build_mb: float | None = None
    peak_mb: float | None = None
    device_peak_mb: float | None = None
    # --profile: the extra profiled run's per-step breakdown (common.profiling.Breakdown as a dict)
    profile: dict | None = None
    # The trained (w1, w2), held in memory for the verdict only: never written to results.json.
    final_weights: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return run_label(self.variant, self.feed, self.world_size)

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.label}/{self.device}/{self.dtype}"

    @property
    def ran(self) -> bool:
        return self.status != "skipped"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, final_weights=None))
        del data["final_weights"]
        data["losses"] = [_encode_float(v) for v in self.losses]
        for name in ("max_rel_err", "x_noise", "weights_x_noise"):
            if data[name] is not None:
                data[name] = _encode_float(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["losses"] = [_decode_float(v) for v in data.get("losses", [])]
        kwargs.pop("final_weights", None)
        for name in ("max_rel_err", "x_noise", "weights_x_noise"):
            if data.get(name) is not None:
                kwargs[name] = _decode_float(data[name])
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "RunResult":
        return cls.from_dict(json.loads(text))


def run_label(variant: str, feed: str | None, world_size: int) -> str:
    """The variant, with the feed in minibatch mode and the worker count when data-parallel."""
    label = variant if feed is None else f"{variant}+{feed}"
    return label if world_size == 1 else f"{label} x{world_size}"


_SEVERITY = ("ok", "mismatch", "diverged", "failed")
COSTS = ("start_s", "build_s", "first_step_s", "import_mb", "build_mb", "peak_mb", "device_peak_mb")


def merge_rounds(rounds: list[RunResult]) -> RunResult:
    """One row from several rounds of the same run: the worst verdict, every round's times.

    Losses are round 1's; a round whose losses differ bit for bit is named in the note,
    because on a CPU the same configuration should reproduce exactly.
    """
    ran = [r for r in rounds if r.status != "skipped"]
    if not ran:
        return rounds[0]
    merged = dataclasses.replace(ran[0])
    worst = max(ran, key=lambda r: _SEVERITY.index(r.status))
    merged.status, merged.error = worst.status, worst.error
    if worst.status == "ok":
        top = max(ran, key=lambda r: r.x_noise or 0.0)
        merged.x_noise, merged.worst_step, merged.max_rel_err = top.x_noise, top.worst_step, top.max_rel_err
        merged.weights_x_noise = max((r.weights_x_noise for r in ran if r.weights_x_noise is not None), default=None)
    timed = [r for r in ran if r.step_times_s]
    merged.round_step_times_s = [r.step_times_s for r in timed]
    merged.round_setup_s = [r.setup_s for r in timed if r.setup_s is not None]
    merged.round_data_times_s = [r.data_times_s for r in timed if r.data_times_s]
    merged.round_harness_cost = [r.harness_cost for r in timed if r.harness_cost is not None]
    merged.harness_pair_costs = [cost for r in timed for cost in r.harness_pair_costs]
    if merged.harness_pair_costs:
        merged.harness_cost = median(merged.harness_pair_costs)
    elif merged.round_harness_cost:  # results written before pairs were kept
        merged.harness_cost = median(merged.round_harness_cost)
    for name in COSTS:  # each the median over the rounds (round 1's alone would be one draw)
        values = [getattr(r, name) for r in timed if getattr(r, name) is not None]
        setattr(merged, name, median(values) if values else None)
    if merged.round_setup_s:
        merged.setup_s = median(merged.round_setup_s)
    differing = [i + 1 for i, r in enumerate(ran) if r.losses != ran[0].losses]
    if differing:
        rounds_text = ", ".join(map(str, differing))
        merged.note = "; ".join(filter(None, [merged.note, f"losses of round(s) {rounds_text} differ from round 1's"]))
    return merged


class SchemaError(ValueError):
    """A results file this version cannot read; the message says why in one line."""


def load_results(path) -> tuple[dict, list[RunResult]]:
    """Read a results.json written by compare.py, refusing other schema versions."""
    from pathlib import Path

    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SchemaError(f"{path}: not JSON ({exc})") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version not in READABLE_VERSIONS:
        raise SchemaError(f"{path}: results schema version {version!r}; this fourways reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))} (rerun compare.py to regenerate it)")
    try:
        return doc, [RunResult.from_dict(run) for run in doc["runs"]]
    except (KeyError, TypeError) as exc:
        raise SchemaError(f"{path}: malformed results ({type(exc).__name__}: {exc})") from None
