"""Data parallelism over links of a given speed, measured on two hosts and predicted up to 64 workers.

    python benchmarks/link_speed.py --out docs/links        # measure (root: network namespaces; ~20 min)
    python benchmarks/link_speed.py --report-from docs/links/links.json [--markdown] [--out DIR: redraw the plot]

torch DDP on 2 workers, one on each of two hosts (common/hosts.py: network namespaces joined by a
veth pair), over links limited to 1 and 10 Gbit/s (tc tbf) and unlimited, at two sizes; and the
same engine on 1 worker as the baseline. Each row: step time, the collectives timed alone (comm),
efficiency, and whether it matched the reference. From the measured all-reduce times at the two
sizes each link's latency and bandwidth are fitted (common/ring_model.py); with the 1-worker
compute time they predict step time and efficiency for W workers on that link, W up to 64, and
the fewest workers from which data parallelism pays. The prediction is checked against the
measured 2-host steps. The plot (links.png) shows the predicted speedups with the measured points.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import hosts, noise, ring_model  # noqa: E402
from common.hosts import link_name  # noqa: E402
from common.config import RunConfig  # noqa: E402
from common.launch import run_one  # noqa: E402
from common.problem import make_problem  # noqa: E402
from common.report import aligned, markdown, write_json_atomic  # noqa: E402
from common.runner import apply_verdict  # noqa: E402
from common.sweep import stable_lr  # noqa: E402
from common.timing import median, step_stats  # noqa: E402
from implementations import REGISTRY  # noqa: E402

# lr as compare.py --sweep scales it, as stable as the lecture's at every size
SIZES = {"lecture": dict(batch=64, d_in=1000, hidden=100, d_out=10, steps=300, lr=1e-6),
         "large": dict(batch=256, d_in=4096, hidden=1024, d_out=128, steps=60, lr=stable_lr(1e-6, 256, 4096, 1024))}
LINKS_GBIT = (1.0, 10.0, None)  # None: the veth pair unlimited
ENGINE = "torch"


def gradient_bytes(size: dict, dtype: str) -> int:
    """What each step all-reduces: w1's and w2's gradients."""
    return (size["d_in"] * size["hidden"] + size["hidden"] * size["d_out"]) * np.dtype(dtype).itemsize


# What each size runs: one worker on N rows and on N/2 (the compute model's two points), one
# worker on N/2 rows with one thread (what each of the 2 hosts' workers computes here, where they
# share the machine's cores), and 2 workers on 2 hosts over each link.
KINDS = ("full", "half", "half_1_thread")


def _config(size: dict, kind: str, dtype: str, threads: int) -> RunConfig:
    cfg = RunConfig(**size, dtype=dtype, threads=threads)
    if kind.startswith("half"):
        cfg = dataclasses.replace(cfg, batch=size["batch"] // 2, threads=1 if kind == "half_1_thread" else threads)
    return dataclasses.replace(cfg, workers=2 if kind == "hosts" else 1).validate()


def measure(threads: int, dtype: str, timeout_s: float, rounds: int) -> dict:
    """Every (size, kind, link) `rounds` times, interleaved as compare.py's rounds are. A point keeps
    the median over rounds of its step median, and the fastest round's collectives (timed alone,
    they come out bimodal at the lecture's size here: 0.6-0.8 ms or 3.0-3.8 ms from round to round)."""
    impl = REGISTRY[ENGINE]
    runs = [(name, kind, None) for name in SIZES for kind in KINDS]
    runs += [(name, "hosts", gbit) for name in SIZES for gbit in LINKS_GBIT]
    configs = {run: _config(SIZES[run[0]], run[1], dtype, threads) for run in runs}
    references = {}
    found: dict[tuple, list] = {run: [] for run in runs}
    for round_index in range(rounds):
        for run in runs:
            name, kind, gbit = run
            cfg = configs[run]
            where = f"2 hosts, link {link_name(gbit)}" if kind == "hosts" else f"1 worker, {kind.replace('_', ' ')}"
            print(f"round {round_index + 1}/{rounds}, {name}: {where} ...", file=sys.stderr, flush=True)
            if kind == "hosts":
                with hosts.TwoHosts(gbit) as two:
                    result = run_one(impl, impl.distributed.variant, cfg, timeout_s, hosts=two)
            else:
                result = run_one(impl, impl.distributed.variant, cfg, timeout_s)
            key = dataclasses.replace(cfg, workers=1)
            if key not in references:
                references[key] = noise.measure(key, make_problem(key))
            found[run].append(apply_verdict(result, references[key]))
    points = []
    for (name, kind, gbit), results in found.items():
        timed = [r for r in results if r.step_times_s]
        steps = sorted(step_stats(r.step_times_s, configs[name, kind, gbit].warmup).median_s for r in timed)
        comms = sorted(r.comm_s for r in timed if r.comm_s)
        worst = next((r for r in results if r.status != "ok"), results[0])
        points.append({"size": name, "kind": kind, "link_gbit": gbit, "status": worst.status,
                       "match": worst.status == "ok", "error": worst.error,
                       "step_s": median(steps) if steps else None, "step_s_rounds": steps,
                       "comm_s": comms[0] if comms else None, "comm_s_rounds": comms})
    return {"engine": f"{ENGINE}/{impl.distributed.variant}", "dtype": dtype, "threads": threads, "sizes": SIZES,
            "links_gbit": list(LINKS_GBIT), "points": points, "rounds": rounds,
            "measured": time.strftime("%Y-%m-%d")}


# --- the report ---------------------------------------------------------------------------------

def _point(doc: dict, size: str, kind: str, gbit: float | None = None) -> dict | None:
    return next((p for p in doc["points"] if p["size"] == size and p["kind"] == kind
                 and (kind != "hosts" or p["link_gbit"] == gbit) and p["step_s"]), None)


def fitted_links(doc: dict) -> dict:
    """{link_gbit: Link} from the 2-worker all-reduce times at every size."""
    links = {}
    for gbit in doc["links_gbit"]:
        pairs = [(gradient_bytes(size, doc["dtype"]), p["comm_s"]) for name, size in doc["sizes"].items()
                 if (p := _point(doc, name, "hosts", gbit)) and p["comm_s"]]
        links[gbit] = ring_model.fit_link(pairs)
    return links


def compute_of(doc: dict, size: str) -> ring_model.Compute | None:
    full, half = _point(doc, size, "full"), _point(doc, size, "half")
    return ring_model.fit_compute(full["step_s"], half["step_s"]) if full and half else None


def tables(doc: dict) -> list[tuple[str, list[list[str]]]]:
    links = fitted_links(doc)
    measured = [["size", "link", "1 worker ms", "N/2 rows, 1 thread ms", "2 hosts ms", "comm ms", "comm %",
                 "efficiency", "model ms", "measured / model", "match"]]
    for name, size in doc["sizes"].items():
        one, half_1 = _point(doc, name, "full"), _point(doc, name, "half_1_thread")
        nbytes = gradient_bytes(size, doc["dtype"])
        for gbit in doc["links_gbit"]:
            two = _point(doc, name, "hosts", gbit)
            if one is None or half_1 is None or two is None:
                measured.append([name, link_name(gbit), *[""] * 8, "failed"])
                continue
            # what each worker here computes, measured, plus the fitted link's all-reduce
            model_s = half_1["step_s"] + ring_model.allreduce_s(2, nbytes, links[gbit])
            measured.append([name, link_name(gbit), f"{one['step_s'] * 1e3:.2f}", f"{half_1['step_s'] * 1e3:.2f}",
                             f"{two['step_s'] * 1e3:.2f}", f"{two['comm_s'] * 1e3:.2f}",
                             f"{100 * two['comm_s'] / two['step_s']:.0f}", f"{one['step_s'] / (2 * two['step_s']):.0%}",
                             f"{model_s * 1e3:.2f}", f"{two['step_s'] / model_s:.2f}",
                             "yes" if two["match"] else "NO"])
    fit = [["link", "latency per ring step us", "bandwidth Gbit/s (fitted)"]]
    for gbit, link in links.items():
        fit.append([link_name(gbit), f"{link.latency_s * 1e6:.0f}", f"{link.bytes_per_s * 8 / 1e9:.2f}"])
    compute = [["size", "1 worker on N rows ms", "on N/2 rows ms", "fixed ms", "proportional to rows ms"]]
    predicted = [["size", "link", *[f"W={w}" for w in ring_model.WORKER_COUNTS], "pays from", "best"]]
    for name, size in doc["sizes"].items():
        model = compute_of(doc, name)
        if model is None:
            continue
        compute.append([name, f"{_point(doc, name, 'full')['step_s'] * 1e3:.2f}",
                        f"{_point(doc, name, 'half')['step_s'] * 1e3:.2f}", f"{model.fixed_s * 1e3:.2f}",
                        f"{model.rows_s * 1e3:.2f}"])
        nbytes = gradient_bytes(size, doc["dtype"])
        for gbit, link in links.items():
            cells = [f"{p.step_s * 1e3:.2f} ({p.efficiency:.0%})" for p in
                     (ring_model.predict(model, nbytes, link, w) for w in ring_model.WORKER_COUNTS)]
            pays = ring_model.pays_from(model, nbytes, link)
            top = ring_model.best(model, nbytes, link)
            predicted.append([name, link_name(gbit), *cells, "never (W <= 64)" if pays is None else f"W={pays}",
                              f"W={top.workers}, {top.speedup:.2f}x"])
    # the latency of the link tc does not shape (a tbf bucket can hide it: the 1 Gbit/s fit clamps it at 0)
    fastest = links.get(None) or max(links.values(), key=lambda link: link.latency_s)
    needed = [["size", *[f"W={w}" for w in ring_model.WORKER_COUNTS]]]
    for name, size in doc["sizes"].items():
        model = compute_of(doc, name)
        if model is None:
            continue
        cells = [ring_model.bandwidth_to_pay(model, gradient_bytes(size, doc["dtype"]), fastest.latency_s, w)
                 for w in ring_model.WORKER_COUNTS]
        needed.append([name, *["never" if b is None else f"{b * 8 / 1e9:.1f}" for b in cells]])
    return [("measured: 1 worker, and 2 workers on 2 hosts", measured),
            ("the links, fitted to the measured all-reduces (2 sizes each)", fit),
            ("one worker's compute, fitted to its step on N and N/2 rows", compute),
            ("predicted step ms (efficiency) on W workers, one per host, each with the 1-worker run's cores",
             predicted),
            (f"the bandwidth in Gbit/s above which W workers beat one (at {fastest.latency_s * 1e6:.0f} us per ring "
             "step, the unshaped link's; never: the latencies alone outweigh the compute saved)", needed)]


def report(doc: dict, as_markdown: bool) -> str:
    sizes = [f"{n} N={s['batch']} D_in={s['d_in']} H={s['hidden']} D_out={s['d_out']} "
             f"({gradient_bytes(s, doc['dtype']) / 1e6:.2f} MB of gradient)" for n, s in doc["sizes"].items()]
    head = (f"{doc['engine']}, {doc['dtype']}, {doc['threads']} threads in all, median of {doc['rounds']} interleaved "
            f"rounds, measured {doc['measured']}; sizes: " + "; ".join(sizes))
    parts = [head]
    for title, body in tables(doc):
        parts.append(f"{title}:\n\n" + (markdown(body) if as_markdown else "\n".join(aligned(body))))
    return "\n\n".join(parts)


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = fitted_links(doc)
    fig, axes = plt.subplots(1, len(doc["sizes"]), figsize=(6 * len(doc["sizes"]), 4.5), squeeze=False)
    counts = (1, *ring_model.WORKER_COUNTS)
    for ax, (name, size) in zip(axes[0], doc["sizes"].items()):
        one, model = _point(doc, name, "full"), compute_of(doc, name)
        if model is None:
            continue
        nbytes = gradient_bytes(size, doc["dtype"])
        for gbit, link in links.items():
            line, = ax.plot(counts, [ring_model.predict(model, nbytes, link, w).speedup for w in counts],
                            marker=".", label=f"model, {link_name(gbit)}")
            two, half_1 = _point(doc, name, "hosts", gbit), _point(doc, name, "half_1_thread")
            if two is not None and half_1 is not None:
                # here the 2 hosts share one machine's cores: the model of *this* point is the measured
                # 1-thread half-batch compute plus the fitted all-reduce (x), against the measured step (o)
                ax.plot([2], [one["step_s"] / two["step_s"]], marker="o", markersize=9, linestyle="none",
                        color=line.get_color(), markerfacecolor="none", label=f"measured, {link_name(gbit)}")
                here = half_1["step_s"] + ring_model.allreduce_s(2, nbytes, link)
                ax.plot([2], [one["step_s"] / here], marker="x", markersize=8, linestyle="none",
                        color=line.get_color())
        unshaped = links.get(None)
        if unshaped is not None:  # where it would pay: the unshaped link's latency at 100 Gbit/s
            fast = ring_model.Link(unshaped.latency_s, 100e9 / 8)
            ax.plot(counts, [ring_model.predict(model, nbytes, fast, w).speedup for w in counts], linestyle="--",
                    color="grey", label="model, 100 Gbit/s (not measured)")
        ax.axhline(1, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(counts, [str(w) for w in counts])
        ax.set_xlabel("workers W (one per host)")
        ax.set_ylabel("speedup over 1 worker (above 1: it pays)")
        ax.set_title(f"{name}: N={size['batch']} D_in={size['d_in']} H={size['hidden']} D_out={size['d_out']}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{doc['engine']}, ring all-reduce model (lines: each worker with its own cores); at W=2 the "
                 "2 hosts measured on one shared machine (o) and that point's model (x)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/link_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="measure, and write links.json and links.png here")
    parser.add_argument("--report-from", type=Path, metavar="LINKS_JSON", help="run nothing: print an earlier run")
    parser.add_argument("--markdown", action="store_true", help="the tables as Markdown")
    parser.add_argument("--threads", type=int, default=RunConfig().threads, help="threads in all (default: all)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats of every run (default 3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run (default 600)")
    args = parser.parse_args(argv)
    if args.out is None and args.report_from is None:
        parser.error("give --out DIR (measure) or --report-from LINKS_JSON (reprint; with --out, redraw the plot)")
    if args.report_from is not None:
        try:
            doc = json.loads(args.report_from.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--report-from {args.report_from}: not a readable links.json ({exc})")
        print(report(doc, args.markdown))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            plot(doc, args.out / "links.png")
        return 0
    reason = hosts.unavailable_reason()
    if reason:
        parser.error(f"two hosts cannot be made here: {reason}")
    if REGISTRY[ENGINE].missing():
        parser.error(f"{ENGINE} is not installed: pip install -e '.[{REGISTRY[ENGINE].extra}]'")
    doc = measure(args.threads, args.dtype, args.timeout, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "links.json", doc)
    print(report(doc, args.markdown))
    if all(p["step_s"] for p in doc["points"]):
        plot(doc, args.out / "links.png")
        print(f"\nwrote {args.out / 'links.json'} and {args.out / 'links.png'}")
    return 0 if all(p["match"] for p in doc["points"]) else 1


if __name__ == "__main__":
    sys.exit(main())
