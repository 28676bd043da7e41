"""README's quick start is what CI runs; keep them from drifting apart."""

import re

from tests.conftest import ROOT


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_install_and_compare_then_install_and_test():
    install_compare, install_test = quick_start_commands()
    assert install_compare.startswith("pip install") and install_compare.endswith("python compare.py")
    assert install_test.startswith("pip install") and "pytest" in install_test


def test_ci_runs_readme_test_command_verbatim():
    assert quick_start_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()
