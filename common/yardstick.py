"""The yardstick every run is read against, measured with every library the comparison uses.

- The peak: the best large matmul of those libraries, each timed in a child of its own
  (implementations.kernels) at the run's dtype and threads. The compute floor divides by it.
- The shape floor: at each of the run's sizes, the fastest library's own kernels for the
  step (its five matmuls and its elementwise work). Each run is also read against its own
  library's kernels: its distance to the floor splits into kernels and overhead.
- What the CPU could do in theory, where that can be known, and the environment variables that
  steer the libraries' kernels (a BLAS held below what the CPU supports is said in one line).

The harness imports no framework: the children do.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from common.roofline import Shape

PEAK_SIZE = 2048  # large enough that every library here runs at its best rate (2026-12-02)
TIMEOUT_S = 600.0


class YardstickError(RuntimeError):
    """No library's child could time its kernels: nothing to read any run against."""


def measure(libraries: list[str], shapes: list[Shape], dtype: str, threads: int, lr: float = 1e-6,
            peak_size: int = PEAK_SIZE) -> dict:
    """Every library's figures, the best peak and, per shape, the fastest library's kernels.

    A library whose child fails has its error recorded and is left out of the best; the
    comparison goes on with the others.
    """
    from common.launch import THREAD_ENV, run_captured

    # The yardstick is the CPU's: on a GPU machine JAX and TensorFlow would put its matmuls on the GPU
    env = {**os.environ, **{name: str(threads) for name in THREAD_ENV}, "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu"}
    figures: dict[str, dict] = {}
    for library in libraries:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "kernels.json"
            cmd = [sys.executable, "-m", "implementations.kernels", "--library", library, "--dtype", dtype,
                   "--threads", str(threads), "--peak-size", str(peak_size), "--lr", repr(lr), "--json", str(out),
                   *[arg for shape in shapes for arg in ("--shape", "x".join(map(str, shape)))]]
            code, _, stderr = run_captured(cmd, env, TIMEOUT_S, stdout=False)
            if code == 0 and out.exists():
                figures[library] = json.loads(out.read_text())
            else:
                last = ([line for line in stderr.strip().splitlines() if line.strip()] or ["no output"])[-1]
                figures[library] = {"library": library, "error": "timed out" if code is None else last}
    return summarise(figures, dtype, threads)


def combine(first: dict, second: dict) -> dict:
    """Two passes of measure() (before the runs and after them) as one: each library's best peak
    and, per shape, its faster kernels. A floor is what the machine can do, so a slow spell of a
    shared machine during one pass does not raise it."""
    merged = {}
    for library, a in first["libraries"].items():
        b = second["libraries"].get(library, {"error": "not in the second pass"})
        if "error" in a or "error" in b:
            merged[library] = b if "error" in a else a
            continue
        shapes = {key: min(part, b["shapes"].get(key, part), key=lambda p: p["matmul_s"] + p["elementwise_s"])
                  for key, part in a["shapes"].items()}
        merged[library] = {**a, "peak_gflops": max(a["peak_gflops"], b["peak_gflops"]), "shapes": shapes,
                           "passes": [a["peak_gflops"], b["peak_gflops"]]}
    threads = next(f["threads"] for f in merged.values() if "error" not in f)
    return {**summarise(merged, first["peak_dtype"], threads), "passes": 2}


def summarise(figures: dict[str, dict], dtype: str, threads: int) -> dict:
    """measure()'s document from the children's figures (by library)."""
    timed = {lib: f for lib, f in figures.items() if "error" not in f}
    if not timed:
        raise YardstickError("no library's kernels could be timed: " + "; ".join(
            f"{lib}: {f['error']}" for lib, f in figures.items()))
    best = max(timed.values(), key=lambda f: f["peak_gflops"])
    floors = {}
    for key in dict.fromkeys(k for f in timed.values() for k in f["shapes"]):
        measured = [f for f in timed.values() if key in f["shapes"]]
        # a library whose call was nearly all dispatch (roofline.time_parts) does not set the floor
        resolved = [f for f in measured if not f["shapes"][key].get("unresolved")] or measured
        fastest = min(resolved, key=lambda f: f["shapes"][key]["matmul_s"] + f["shapes"][key]["elementwise_s"])
        floors[key] = {**fastest["shapes"][key], "library": fastest["library"]}
    return {"peak_gflops": best["peak_gflops"], "peak_library": best["library"], "peak_dtype": dtype,
            "shape_floors": floors, "libraries": figures, "passes": 1,
            "theoretical": theoretical_peak(dtype, threads), "kernel_env": kernel_env_lines(figures)}


# --- what the CPU could do --------------------------------------------------------------------

# FMA units per core that can each start one full-width vector FMA a cycle, for the CPU families
# whose designs say so; elsewhere the theoretical peak is not guessed.
FMA_UNITS = {("AuthenticAMD", 23): 2, ("AuthenticAMD", 25): 2, ("AuthenticAMD", 26): 2}
# Zen 4 (family 25, model 0x10 and up) runs AVX-512 at half rate: two 256-bit halves
HALF_RATE_AVX512 = {("AuthenticAMD", 25)}


def cpu_facts(cpuinfo: str | None = None) -> dict:
    """Vendor, name, family, model, flags and the clock /proc/cpuinfo gives, of the first core."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    facts: dict = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first core's block
        name, _, text = (part.strip() for part in line.partition(":"))
        if name == "vendor_id":
            facts["vendor"] = text
        elif name == "cpu family":
            facts["family"] = int(text)
        elif name == "model":
            facts["model"] = int(text)
        elif name == "model name":
            facts["name"] = text
        elif name == "cpu MHz":
            facts["mhz"] = float(text)
        elif name == "flags":
            facts["flags"] = text.split()
    return facts


def max_clock_mhz() -> float | None:
    """The cores' highest clock as the kernel knows it (cpufreq); None where it is not exposed (a VM)."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e3
    except (OSError, ValueError):
        return None


def theoretical_peak(dtype: str, threads: int, facts: dict | None = None, clock_mhz: float | None = None,
                     read_clock: bool = True) -> dict:
    """cores x FMA units x vector lanes x 2 FLOP x clock, or why it cannot be known here."""
    facts = cpu_facts() if facts is None else facts
    clock_mhz = max_clock_mhz() if clock_mhz is None and read_clock else clock_mhz
    flags = set(facts.get("flags", ()))
    cpu = (facts.get("vendor"), facts.get("family"))
    bits = 512 if "avx512f" in flags else 256 if {"avx2", "fma"} <= flags else None
    if bits == 512 and cpu in HALF_RATE_AVX512:
        bits = 256  # the same FLOPs per cycle as AVX2 on such a core
    lanes = bits // (32 if dtype == "float32" else 64) if bits else None
    units = FMA_UNITS.get(cpu)
    if not lanes or not units:
        what = "no AVX2+FMA or AVX-512 in the CPU's flags" if not lanes else \
            f"the FMA units of this CPU ({cpu[0]} family {cpu[1]}) are not in common/yardstick.py's table"
        return {"gflops": None, "why": f"not known: {what}"}
    per_cycle = threads * units * lanes * 2
    if clock_mhz is None:
        nominal = facts.get("mhz")
        why = ("not known: the cores' clock is not readable here (no cpufreq in /sys, as in a VM; "
               "/proc/cpuinfo's 'cpu MHz' is the nominal clock, which the cores may boost above)")
        if nominal:
            why += (f"; at that nominal {nominal:.0f} MHz: {threads} core(s) x {units} FMA units x {lanes} lanes x 2 = "
                    f"{per_cycle * nominal / 1e3:.0f} GFLOP/s")
        return {"gflops": None, "why": why, "flop_per_cycle": per_cycle}
    return {"gflops": per_cycle * clock_mhz / 1e3, "flop_per_cycle": per_cycle,
            "how": f"{threads} core(s) x {units} FMA units x {lanes} {dtype} lanes x 2 FLOP x {clock_mhz:.0f} MHz "
                   "(cpufreq's maximum)"}


# OpenBLAS kernel families by the widest vectors they use
OPENBLAS_AVX512 = ("skylakex", "cooperlake", "sapphirerapids")


def kernel_env_lines(figures: dict[str, dict], facts: dict | None = None) -> list[str]:
    """One line for an OpenBLAS that an environment variable holds below what this CPU supports,
    naming the libraries whose matmul calls it apart from those that only load it (NumPy's
    OpenBLAS is in every child's process; XLA's, MKL's and oneDNN's matmuls do not call it)."""
    facts = cpu_facts() if facts is None else facts
    if "avx512f" not in facts.get("flags", ()):
        return []
    held: dict[tuple[str, str, str], list[str]] = {}
    for library, f in figures.items():
        coretype = f.get("env", {}).get("OPENBLAS_CORETYPE")
        for pool in f.get("blas", []):
            arch = pool.get("architecture") or ""
            if pool.get("internal_api") == "openblas" and coretype and arch and arch.lower() not in OPENBLAS_AVX512:
                held.setdefault((coretype, pool["library"], arch), []).append(library)
                break
    lines = []
    for (coretype, blas, arch), libraries in held.items():
        calling = [lib for lib in libraries if "openblas" in (figures[lib].get("calls") or "").lower()]
        loading = [lib for lib in libraries if lib not in calling]
        who = (f"the matmul of {', '.join(calling)}" if calling else "no measured library's matmul") + (
            f" (also loaded by {', '.join(loading)}, whose matmuls call their own libraries)" if loading else "")
        lines.append(f"OPENBLAS_CORETYPE={coretype} holds OpenBLAS ({blas}), {who}, to its {arch} kernels, though "
                     "this CPU has AVX-512 (avx512f), which OpenBLAS's own detection would use; unset "
                     "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the command to let it")
    return lines


def own_kernels(measurement: dict) -> dict[str, dict[str, float]]:
    """Per framework, its own library's kernel seconds (matmuls + elementwise) by shape_key."""
    libraries = measurement.get("libraries") or {}
    return {framework: {key: part["matmul_s"] + part["elementwise_s"] for key, part in libraries[lib]["shapes"].items()}
            for framework, lib in (measurement.get("kernels_of") or {}).items()
            if "shapes" in libraries.get(lib, {})}
