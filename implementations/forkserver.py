"""One implementation module imported once, each run forked from it: python -m implementations.forkserver MODULE

compare.py runs every variant in every round in a process of its own. Started by `python -m MODULE`,
each of those processes imported its framework anew, and the imports were half the default
comparison's time (TensorFlow's alone takes seconds). The fork server imports MODULE once, before
any of its framework has run, and forks a fresh process per run, which does what `python -m MODULE
ARGS` does: every run still has a process of its own, its thread pools, allocators and compiled
graphs made in it and gone with it. What the import cost, its seconds and memory, is measured here
once and reported by every run forked from it, as a fresh process would report its own.

Memory needs one step more. Linux gives a forked process the server's anonymous pages, but maps a
file's pages (the frameworks' libraries: TensorFlow's are 400 MB) into it only as it touches them,
so it would start resident with far less than a fresh process that imported the same, and every
library page the run touched would count as the run's. So the forked process first maps in every
file page the server had resident (a minor fault each: about 0.1 s for TensorFlow), and its memory
figures are then those of a process that imported the framework and ran, within the few pages the
kernel maps in around each fault, which standalone.main takes off.

The protocol, one JSON line each way: {"ready": true} once MODULE is imported; then for each request
{"argv": [...], "stderr": PATH} on stdin, the reply {"pid": PID} once the run's process exists (a session of its own, which the caller may kill whole),
then {"pid": PID, "status": CODE} when it ends, CODE as subprocess reports it (-N: killed by signal N).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import sys

import numpy as np

from common.memory import process_age_s, rss_mb

PAGE = os.sysconf("SC_PAGE_SIZE")


def entry_of(module: str):
    """The registry entry `python -m module` runs: the one naming the module (and, where several do,
    as Keras' backends, the one whose environment this process has)."""
    from implementations import REGISTRY

    entries = [impl for impl in REGISTRY.values() if module in (impl.module, getattr(impl.distributed, "module", None))]
    mine = [impl for impl in entries if all(os.environ.get(k) == v for k, v in impl.env)]
    if len(mine) != 1:
        raise SystemExit(f"forkserver: {module} is not one registered implementation here ({len(mine)} match)")
    return mine[0]


def resident_file_pages() -> list[np.ndarray]:
    """The addresses of every page of a readable file mapping that this process has resident
    (/proc/self/pagemap's present bit), one array per mapping; [] where pagemap cannot be read."""
    found = []
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split()
                if len(fields) < 6 or not fields[5].startswith("/") or "r" not in fields[1]:
                    continue
                start, end = (int(address, 16) for address in fields[0].split("-"))
                pagemap.seek(start // PAGE * 8)
                present = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype=np.uint64) >> np.uint64(63)
                pages = start + np.flatnonzero(present) * PAGE
                if pages.size:
                    found.append(pages)
    except OSError:
        return []
    return found


def map_in(pages: list[np.ndarray]) -> None:
    """Touch (read a byte of) each page, so that this process has it resident as its server did."""
    for addresses in pages:
        for address in addresses.tolist():
            ctypes.string_at(address, 1)


def run_forked(module: str, impl, build, argv: list[str], stderr: str, started: tuple, pages: list) -> None:
    """In the forked process: the run's own session and stderr, then standalone.main; never returns."""
    from implementations.standalone import main

    code = 1
    try:
        os.setsid()
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, os.devnull, os.O_WRONLY),
                                (2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            os.dup2(os.open(path, flags, 0o644), fd)
        sys.argv = [module, *argv]
        map_in(pages)
        main(impl, build, argv, module=module, started=started)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(module: str) -> None:
    loaded = importlib.import_module(module)
    impl = entry_of(module)
    started = (process_age_s(), rss_mb())  # what a fresh `python -m module` would have cost by main()
    pages = resident_file_pages()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()  # nothing buffered may be written twice, by the forked process too
        pid = os.fork()
        if pid == 0:
            run_forked(module, impl, loaded.build, request["argv"], request["stderr"], started, pages)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
