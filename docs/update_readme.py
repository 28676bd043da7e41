"""The measured tables of README and the docs pages, regenerated from the results committed under docs/.

Each table in README.md or a docs/*.md page sits between two markers that name the command printing it:

    <!-- generated: python compare.py --report-from docs/cpu/results.json -->
    ...what that command prints (in a code block unless it prints Markdown)...
    <!-- end generated -->

python docs/update_readme.py          rewrites every page's blocks from the commands
python docs/update_readme.py --check  exits 1 and names each block that differs (tests/test_readme.py)
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def pages() -> list[Path]:
    """README and every docs page, the pages that may hold generated tables."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- generated: (?P<command>.+?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def render(command: str) -> str:
    """What `command` prints, as README shows it: Markdown as it is, text in a code block."""
    argv = shlex.split(command)
    scripts = (["compare.py"], ["benchmarks/equivalence_margins.py"], ["benchmarks/link_speed.py"],
               ["benchmarks/bf16_margins.py"])
    rereads = argv[1:2] in scripts and "--report-from" in argv
    # stability.py, kernel_table.py, gpu.py (with --report), findings.py, choosing.py, deploy_matrix.py and
    # mixed_precision.py only ever read committed files
    readers = (["benchmarks/stability.py"], ["benchmarks/kernel_table.py"], ["benchmarks/gpu.py"], ["docs/findings.py"],
               ["docs/choosing.py"], ["docs/deploy_matrix.py"], ["docs/mixed_precision.py"])
    compares = (argv[1:2] in readers and all(a.startswith(("docs/", "--")) for a in argv[2:])
                and (argv[1] != "benchmarks/gpu.py" or argv[2:3] == ["--report"]))  # its other uses measure
    if argv[0] != "python" or not (rereads or compares):
        raise ValueError(f"not a command that reprints committed results: {command}")
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, 1):  # 1: a table whose verdict is not a match is still the table
        raise RuntimeError(f"{command} failed: {proc.stderr.strip()}")
    text = proc.stdout.strip("\n")
    return f"{text}\n" if "--markdown" in argv or argv[1] != "compare.py" else f"```\n{text}\n```\n"


def blocks(readme: str) -> list[tuple[str, str, str]]:
    """(command, the block as README has it, as the command prints it now) for every block."""
    return [(m["command"], m["body"], render(m["command"])) for m in BLOCK.finditer(readme)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block differs")
    args = parser.parse_args(argv)
    stale_pages = 0
    for page in pages():
        text = page.read_text()
        stale = [command for command, body, now in blocks(text) if body != now]
        name = page.relative_to(ROOT)
        if args.check:
            for command in stale:
                print(f"{name}: the table of `{command}` differs from what it prints now", file=sys.stderr)
        elif stale:
            page.write_text(BLOCK.sub(lambda m: m[1] + render(m["command"]) + m[4], text))
            print(f"{name}: {len(stale)} table(s) regenerated")
        stale_pages += bool(stale)
    return 1 if args.check and stale_pages else 0


if __name__ == "__main__":
    sys.exit(main())
