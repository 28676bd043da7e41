"""The ring all-reduce model behind benchmarks/link_speed.py: its formula, its fits, its verdicts."""

import json

import pytest

from common import ring_model
from common.ring_model import Compute, Link


def test_a_ring_all_reduce_sends_twice_the_message_in_all_and_pays_a_latency_per_step():
    link = Link(latency_s=1e-4, bytes_per_s=1e9)
    assert ring_model.allreduce_s(1, 1e6, link) == 0
    assert ring_model.allreduce_s(2, 1e6, link) == pytest.approx(2 * 1e-4 + 1e6 / 1e9)
    # 2 (W - 1) steps of S/W bytes: the bytes per link tend to 2 S, the latencies grow with W
    assert ring_model.allreduce_s(64, 1e6, link) == pytest.approx(126 * 1e-4 + 2 * 63 / 64 * 1e6 / 1e9)


def test_the_link_fit_recovers_latency_and_bandwidth_from_two_sizes():
    link = Link(latency_s=50e-6, bytes_per_s=1.25e9)
    points = [(size, ring_model.allreduce_s(2, size, link)) for size in (4e5, 1.7e7)]
    fitted = ring_model.fit_link(points)
    assert fitted.latency_s == pytest.approx(50e-6) and fitted.bytes_per_s == pytest.approx(1.25e9)


def test_a_fit_that_would_need_a_negative_latency_goes_through_the_origin():
    fitted = ring_model.fit_link([(1e5, 1e-5), (1e7, 2e-2)])
    assert fitted.latency_s == 0 and fitted.bytes_per_s > 0


@pytest.mark.parametrize("points", [[(1e6, 1e-3)], [(1e6, 1e-3), (1e6, 2e-3)], [(1e5, 2e-3), (1e7, 1e-3)]])
def test_a_link_cannot_be_fitted_from_one_size_or_from_times_that_fall_with_size(points):
    with pytest.raises(ValueError):
        ring_model.fit_link(points)


def test_compute_splits_into_a_fixed_part_and_one_that_shrinks_with_the_rows():
    assert ring_model.fit_compute(10.0, 6.0) == Compute(fixed_s=2.0, rows_s=8.0)
    assert ring_model.fit_compute(10.0, 10.5) == Compute(fixed_s=10.0, rows_s=0.0)  # noise: nothing scales
    assert ring_model.fit_compute(10.0, 4.0) == Compute(fixed_s=0.0, rows_s=10.0)  # better than linear: capped
    assert Compute(2.0, 8.0).on(4) == 4.0


def test_data_parallelism_pays_on_a_fast_link_when_compute_dominates_and_never_on_a_slow_one():
    compute = Compute(fixed_s=1e-4, rows_s=0.1)  # 100 ms of row work per step
    fast, slow = Link(10e-6, 12.5e9), Link(10e-6, 0.125e9)
    nbytes = 1.7e7
    assert ring_model.pays_from(compute, nbytes, fast) == 2
    assert ring_model.predict(compute, nbytes, fast, 2).speedup > 1.5
    assert ring_model.pays_from(compute, nbytes, slow) is None  # 1 Gbit/s: 2 S / B alone is 0.27 s
    best = ring_model.best(compute, nbytes, fast)
    assert best.workers in ring_model.WORKER_COUNTS and best.speedup >= ring_model.predict(compute, nbytes, fast,
                                                                                          2).speedup
    assert 0 < best.efficiency <= 1


def test_link_speed_reprints_a_committed_run_without_measuring(cli, tmp_path):
    """benchmarks/link_speed.py --report-from: the tables from links.json alone (no root needed)."""
    doc = {"engine": "torch/ddp", "dtype": "float32", "threads": 2, "rounds": 1, "measured": "2026-11-30",
           "links_gbit": [1.0, None],
           "sizes": {"small": dict(batch=8, d_in=10, hidden=10, d_out=2), "big": dict(batch=8, d_in=1000, hidden=1000,
                                                                                      d_out=2)},
           "points": []}
    for name, step in (("small", 1e-3), ("big", 5e-2)):
        doc["points"] += [{"size": name, "kind": kind, "link_gbit": None, "step_s": s, "comm_s": None, "match": True}
                          for kind, s in (("full", step), ("half", step * 0.6), ("half_1_thread", step * 0.7))]
        for gbit, comm in ((1.0, 1e-3 if name == "small" else 4e-2), (None, 2e-4 if name == "small" else 4e-3)):
            doc["points"].append({"size": name, "kind": "hosts", "link_gbit": gbit, "step_s": step + comm,
                                  "comm_s": comm, "match": True})
    path = tmp_path / "links.json"
    path.write_text(json.dumps(doc))
    proc = cli("benchmarks/link_speed.py", "--report-from", str(path))
    assert proc.returncode == 0, proc.stderr
    for text in ("1 Gbit/s", "unlimited", "pays from", "measured / model", "W=64", "fixed ms"):
        assert text in proc.stdout


def test_the_bandwidth_to_pay_is_where_the_predicted_speedup_crosses_one():
    compute, nbytes, latency = Compute(fixed_s=3e-3, rows_s=23e-3), 1.7e7, 120e-6
    for workers in (2, 8, 64):
        needed = ring_model.bandwidth_to_pay(compute, nbytes, latency, workers)
        assert ring_model.predict(compute, nbytes, Link(latency, needed * 1.01), workers).speedup > 1
        assert ring_model.predict(compute, nbytes, Link(latency, needed * 0.99), workers).speedup < 1
    # at the lecture's size the ring's latencies alone outweigh the 0.13 ms two workers would save
    assert ring_model.bandwidth_to_pay(Compute(0.3e-3, 0.26e-3), 4e5, 120e-6, 2) is None
