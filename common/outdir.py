"""One comparison per --out folder at a time, and a word when a rerun replaces earlier results."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import sys
from pathlib import Path

HOLDER = ".running"  # who holds the folder (pid and command), for the refusal's message; the lock is flock's


class FolderHeld(RuntimeError):
    """The folder is held by another running comparison."""


@contextlib.contextmanager
def held(folder: Path | None):
    """Hold `folder` for this process: a second comparison into it is refused (FolderHeld) while this
    one runs. The lock is an flock on the folder itself, so a process that dies, even by SIGKILL,
    releases it; HOLDER names the holder for the message and is removed on the way out."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = (folder / HOLDER).read_text().strip()
            except OSError:
                holder = "another process"
            raise FolderHeld(f"{folder} is held by a running comparison ({holder}): wait for it to finish, "
                             "or choose another --out") from None
        (folder / HOLDER).write_text(f"pid {os.getpid()}: python {' '.join(sys.argv)}\n")
        try:
            yield
        finally:
            (folder / HOLDER).unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the flock


def replaced(folder: Path | None) -> str | None:
    """What a run into `folder` will replace: a line naming the earlier results.json, or None."""
    path = folder / "results.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    when = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    try:
        runs = len(json.loads(path.read_text()).get("runs", []))
    except (OSError, ValueError, AttributeError):
        runs = None
    count = f"{runs} run(s), " if runs is not None else ""
    return f"{path}: replacing the earlier results ({count}written {when})"
