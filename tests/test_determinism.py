"""Determinism on the CPU: the same configuration twice gives bit-identical losses, for every
implementation, each round in a fresh process (compare.py names any round that differs)."""

import json

import pytest

pytestmark = pytest.mark.slow  # every implementation run twice, each round a process of its own


def test_two_rounds_of_everything_give_bit_identical_losses(cli, tmp_path):
    proc = cli("compare.py", "--rounds", "2", "--steps", "30", "--warmup", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    ran = [r for r in runs if r["status"] != "skipped"]
    assert ran
    for run in ran:
        assert len(run["round_step_times_s"]) == 2, run["framework"]
        assert "differ from round 1" not in (run["note"] or ""), (run["framework"], run["variant"], run["note"])
