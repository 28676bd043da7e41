"""compare.py's fork servers: each framework imported once, every run still a process of its own."""

import json
import os
import sys

from common.config import RunConfig
from common.launch import ForkServers, child_env, config_flags, run_one
from implementations import Implementation

TINY = RunConfig(batch=8, d_in=20, hidden=6, d_out=3, steps=20, warmup=2, threads=1)


def _args(tmp_path, name: str) -> list[str]:
    return ["implementations.numpy", "--variant", "manual", *config_flags(TINY), "--no-check",
            "--json", str(tmp_path / f"{name}.json")]


def test_runs_forked_from_one_server_are_processes_of_their_own_with_the_import_measured_once(tmp_path):
    env = child_env(TINY, {})
    with ForkServers() as servers:
        first = servers.run(_args(tmp_path, "first"), env, 120, tmp_path / "first.err")
        second = servers.run(_args(tmp_path, "second"), env, 120, tmp_path / "second.err")
        (server,) = servers.servers.values()  # one module, one environment: one server
        server_pid = server.proc.pid
    assert first == (0, "") and second == (0, "")
    runs = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("first", "second")]
    assert [r["status"] for r in runs] == ["ok", "ok"] and runs[0]["losses"] == runs[1]["losses"]
    assert runs[0]["start_s"] == runs[1]["start_s"] > 0  # the server's start-up, measured once for both
    assert runs[0]["import_mb"] == runs[1]["import_mb"] > 0
    assert all(r["import_mb"] <= r["build_mb"] <= r["peak_mb"] for r in runs)  # counted from the server's import
    assert server.proc.poll() is not None, "the server outlived its comparison"
    assert server_pid != os.getpid()


def test_a_module_whose_server_cannot_start_runs_as_a_plain_child_that_says_why(tmp_path):
    env = child_env(TINY, {})
    with ForkServers() as servers:
        assert servers.run(["tests.no_such_module", "--variant", "x"], env, 60, tmp_path / "err") is None
        assert servers.servers == {}  # the dead server is left out, not asked again

        # through run_one: the plain child's own error is the row's
        missing = Implementation(name="nowhere", module="tests.no_such_module", variants=("x",), requires=(),
                                 extra=None, kernels="numpy")
        result = run_one(missing, "x", TINY, 60, servers=servers)
    assert result.status == "failed" and "No module named tests.no_such_module" in result.error, result.error


def test_the_forked_run_is_what_python_dash_m_would_run(tmp_path):
    """The same losses, weights and verdict from a forked run as from `python -m` in a fresh process."""
    from common.launch import run_child

    env = child_env(TINY, {})
    plain = _args(tmp_path, "plain")
    code, _ = run_child([sys.executable, "-m", *plain], env, 120)
    with ForkServers() as servers:
        forked = servers.run(_args(tmp_path, "forked"), env, 120, tmp_path / "forked.err")
    assert code == 0 and forked == (0, "")
    results = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("plain", "forked")]
    assert results[0]["losses"] == results[1]["losses"] and results[0]["status"] == results[1]["status"] == "ok"


def test_a_forked_process_maps_in_the_file_pages_its_server_held_so_its_memory_reads_as_a_fresh_ones():
    """Without map_in a forked process starts resident with its server's anonymous pages only; with it,
    within the few pages mapped in around each fault (standalone.main takes the difference off)."""
    import subprocess

    code = ("import os, json\n"
            "from implementations import forkserver\n"
            "from common.memory import rss_mb\n"
            "pages = forkserver.resident_file_pages()\n"
            "server = rss_mb()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    before = rss_mb()\n"
            "    forkserver.map_in(pages)\n"
            "    print(json.dumps([server, before, rss_mb(), sum(p.size for p in pages)]), flush=True)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    server, before, after, pages = json.loads(proc.stdout)
    assert pages > 0 and before < server  # the libraries' pages are not the forked process's yet
    assert abs(after - server) <= 0.05 * server, (server, before, after)
