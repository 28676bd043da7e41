"""README's quick start is what CI runs; keep them from drifting apart."""

import json
import re

import pytest

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


def test_ci_runs_readme_test_command_verbatim_and_then_the_slow_tier_readme_names():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    fast = quick_start_commands()[1]
    assert fast in ci and "python -m pytest -m slow" in ci[ci.index(fast):]
    assert "python -m pytest -m slow" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_every_measured_table_is_what_its_command_prints_from_the_committed_results():
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "docs" / "update_readme.py")
    update_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_readme)
    found = [(page, *block) for page in update_readme.pages() for block in update_readme.blocks(page.read_text())]
    assert len(found) >= 5  # the float32 table, the sweep, the feeds, data-parallel at two sizes
    for page, command, body, now in found:
        assert body == now, f"{page.name}'s table of `{command}` is stale: python docs/update_readme.py"



def test_the_findings_generator_refuses_an_option_it_does_not_have_in_one_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "docs" / "findings.py"), "--lectur"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unknown option --lectur" in done.stderr
    assert "--lecture" in done.stderr  # it names the ones it has

def test_the_project_refers_to_nothing_outside_the_repository():
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), ROOT / "compare.py", *ROOT.glob("common/*.py"), *ROOT.glob("implementations/*.py"),
                 *ROOT.glob("deploy/*.py"), *ROOT.glob("tests/*.py")]:
        text = path.read_text()
        # spelled in two pieces so that this file does not find itself
        assert ("shared" + "/") not in text and ("the " + "brief") not in text, path.name


def test_readme_is_a_front_page_that_links_every_docs_page_and_every_link_resolves():
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", readme))
    assert set(pages) <= linked, set(pages) - linked
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\((?!https?:)([^)#\s]+)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def test_the_side_by_side_page_is_what_the_implementation_files_say_now():
    import importlib.util

    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "docs" / "side_by_side.py")
    side_by_side = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(side_by_side)
    assert side_by_side.main(["--check"]) == 0, "docs/side-by-side.md is stale: python docs/side_by_side.py"
    page = (ROOT / "docs" / "side-by-side.md").read_text()
    for rung in side_by_side.RUNGS:  # every rung's code is on the page, as its file has it today
        for name in rung.functions:
            assert side_by_side.source_of(rung.file, name) in page


def test_the_decision_table_names_registered_variants_and_reads_every_file_it_cites():
    import importlib.util

    from implementations import REGISTRY

    spec = importlib.util.spec_from_file_location("choosing", ROOT / "docs" / "choosing.py")
    choosing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(choosing)
    registered = {f"{impl.name}/{variant}" for impl in REGISTRY.values() for variant in impl.variants}
    assert choosing.HAND_WRITTEN_GRADIENTS <= registered
    # The page as committed (tests/test_readme.py's slow check holds it equal to what the script prints now)
    page = (ROOT / "docs" / "choosing.md").read_text()
    block = page.split("<!-- generated: python docs/choosing.py -->", 1)[1].split("<!-- end generated -->", 1)[0]
    for cited in (choosing.CPU, choosing.SWEEP, choosing.DEPLOY, *choosing.WORKERS):
        assert (ROOT / cited).is_file() and f"`{cited}`" in block
    assert len([line for line in block.splitlines() if line.startswith("| ")]) == 1 + 6  # header, one row per need


def test_every_committed_results_file_is_the_current_schema():
    """docs/' results are what today's code writes and reads: re-measured, not carried over from an older schema."""
    from common.result import SCHEMA_VERSION

    files = sorted((ROOT / "docs").rglob("results.json"))
    assert len(files) > 10
    stale = [str(p.relative_to(ROOT)) for p in files if json.loads(p.read_text()).get("schema_version") != SCHEMA_VERSION]
    assert stale == []


def test_the_deploy_matrix_gives_every_cell_a_figure_or_a_reason():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_matrix", ROOT / "docs" / "deploy_matrix.py")
    deploy_matrix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_matrix)

    def row(model, runtime, batch, median_s, err):
        return {"model": model, "runtime": runtime, "batch": batch, "median_s": median_s, "max_rel_err": err,
                "load_s": 1e-3, "model_bytes": 1}

    doc = {"tolerance": 1e-5, "skipped": [], "failed": [], "rows": [
        row("a.onnx", "onnxruntime", 1, 10e-6, 1e-7), row("b.onnx", "onnxruntime", 1, 20e-6, 1e-7),
        row("a.onnx", "onnxruntime", 64, 80e-6, 1e-7), row("b.onnx", "onnxruntime", 64, 80e-6, 1e-7),
        row("m.pte", "executorch + XNNPACK", 1, 14e-6, 1e-3), row("m.pte", "executorch + XNNPACK", 64, 1e-4, 1e-7),
        row("m.pt2", "torch", 1, 24e-6, None)]}  # a source row is no cell
    cells = deploy_matrix.cells(doc)
    # two files of one format in one runtime: the range over both, never the last one read
    assert cells[(".onnx", "Python")] == ["onnxruntime: 10-20 / 80 us (2 files), match"]
    assert cells[(".pte (ExecuTorch)", "Python")] == ["executorch + XNNPACK: 14 / 100 us, NO match"]
    assert (".pt2 (AOTInductor)", "Python") not in cells
    table = deploy_matrix.matrix(doc).splitlines()
    assert len(table) == 2 + len(deploy_matrix.FORMATS)
    for line in table[2:]:
        fields = [f.strip() for f in line.strip("|").split("|")]
        assert len(fields) == 1 + len(deploy_matrix.PLACES) and all(fields), line
    # the committed page: every cell of its generated matrix says something
    page = (ROOT / "docs" / "deploy.md").read_text()
    block = page.split("<!-- generated: python docs/deploy_matrix.py -->", 1)[1].split("<!-- end generated -->", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("| .") or line.startswith("| StableHLO")]
    assert len(lines) == len(deploy_matrix.FORMATS) and "no row in this deploy.json" not in block
