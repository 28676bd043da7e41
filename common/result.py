"""RunResult: what one run produced, with a lossless JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
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
    max_rel_err: float | None = None
    worst_step: int | None = None  # 1-based step of max_rel_err
    note: str | None = None  # how to read this row's times, when it differs from the others

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.variant}/{self.device}/{self.dtype}"

    @property
    def ran(self) -> bool:
        return self.status != "skipped"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["losses"] = [_encode_float(v) for v in self.losses]
        if self.max_rel_err is not None:
            data["max_rel_err"] = _encode_float(self.max_rel_err)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["losses"] = [_decode_float(v) for v in data.get("losses", [])]
        if data.get("max_rel_err") is not None:
            kwargs["max_rel_err"] = _decode_float(data["max_rel_err"])
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "RunResult":
        return cls.from_dict(json.loads(text))
