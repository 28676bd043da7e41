"""The layers hold: compare > deploy > implementations > common, no import cycle, and no
framework loaded by the harness, so that a missing framework never breaks the others."""

import ast
import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "onnx", "onnxruntime", "tf2onnx", "onnxscript")
PACKAGES = ("common", "implementations", "deploy")


def test_import_linter_contracts_are_kept():
    """pyproject.toml's contracts: each layer imports only those below it; common/ no framework at all."""
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter not installed: pip install -e '.[test]'")
    proc = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_module_of_the_project_takes_part_in_an_import_cycle():
    grimp = pytest.importorskip("grimp", reason="grimp (import-linter's graph) not installed")
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES)
    cycles = [(a, b) for a in graph.modules if a.startswith(PACKAGES)
              for b in graph.find_modules_directly_imported_by(a)
              if b.startswith(PACKAGES) and b != a and graph.chain_exists(importer=b, imported=a)]
    assert cycles == []


def _top_level_imports(path) -> set[str]:
    """The packages a module imports when it is loaded (not those imported inside functions)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_compare_and_the_harness_load_no_framework_at_module_level():
    for path in [ROOT / "compare.py", *(ROOT / "common").glob("*.py")]:
        assert not _top_level_imports(path) & set(FRAMEWORKS), path.name


def test_compare_runs_where_every_framework_is_missing(tmp_path):
    # Every framework made unimportable in compare.py's own process: it must still run NumPy and
    # report the rest (its children, which would import them, see the real packages). A finder that
    # refuses them, as a missing package would (None entries in sys.modules would fool libraries that
    # look there to see whether torch is loaded, as scipy's array-API layer does).
    code = ("import sys\n"
            "class Missing:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {FRAMEWORKS!r}:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Missing())\n"
            "import compare, deploy.run\n"
            "sys.exit(compare.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "--frameworks", "numpy", "--steps", "5", "--warmup", "1",
                           "--rounds", "1", "--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in json.loads((tmp_path / "results.json").read_text())["runs"]] == ["ok"]


def test_every_implementation_is_covered_in_process_or_names_the_tests_that_run_it_elsewhere():
    import re

    from implementations import REGISTRY, in_process_cases

    cases = set(in_process_cases())
    assert {("jax", variant) for variant in REGISTRY["jax"].variants} <= cases  # the fifth way included
    for impl in REGISTRY.values():
        for variant in impl.variants:
            if (impl.name, variant) in cases:
                continue
            named = re.findall(r"tests/test_\w+\.py", impl.why_not_in_process(variant))
            assert named and all((ROOT / path).is_file() for path in named), (impl.name, variant)


def _own_modules(impl) -> set[str]:
    """The modules the registry declares as one framework's own: its implementation, its
    data-parallel engine, its deploy child (when that is not the shared deploy.bench)."""
    own = {impl.module}
    if impl.distributed is not None:
        own.add(impl.distributed.module)
    own.update(exporter.child for exporter in impl.exporters if exporter.child != "deploy.bench")
    return own


def _named_by_hand(source: str, module: str) -> list[int]:
    """The lines of `source` (the module `module`) where a string equals a registered framework's name
    (or an alias, "keras") that is not this module's own framework."""
    from implementations import ALIASES, REGISTRY

    names = set(REGISTRY) | set(ALIASES)
    own = {own_module: impl.name for impl in REGISTRY.values() for own_module in _own_modules(impl)}
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and node.value in names and own.get(module) != node.value)


def test_no_framework_is_named_by_hand_outside_the_registry_and_its_own_modules():
    """What varies by framework is a registry field, never a name compared by hand: a string equal to a
    registered framework's name may appear only in implementations/__init__.py and in that framework's
    own modules. Not read: implementations/ (the frameworks' shared support modules name the backends
    they serve), benchmarks/ (each measures named libraries on purpose, apart from the suite's own code:
    peak_check.py is the yardstick's independent check) and docs/*.py (they write prose about named rows
    of committed results)."""
    files = [ROOT / "compare.py", *(ROOT / "common").glob("*.py"), *(ROOT / "deploy").glob("*.py")]
    assert len(files) > 25
    found = [f"{path.relative_to(ROOT)}:{line}" for path in files
             for line in _named_by_hand(path.read_text(), ".".join(path.relative_to(ROOT).with_suffix("").parts))]
    assert found == []


def test_the_name_check_finds_a_name_compared_by_hand_and_allows_a_framework_its_own():
    code = 'def threads(source):\n    if source == "torch":\n        return 1\n    return "jax"\n'
    assert _named_by_hand(code, "common.anything") == [2, 4]
    assert _named_by_hand(code, "deploy.jax_export") == [2]  # jax's deploy child may name jax


# --- every implementation file has one shape --------------------------------------------------

SECTION = re.compile(r"^# --- (?P<title>[^:]+?)(?::.*?)? -+$")
FIRST_SECTIONS = ("the network and loss", "the step of each variant")
# between the step and build, what some frameworks need of their own
MIDDLE_SECTIONS = {"the feed (minibatch mode)", "the process group", "the processes", "the strategy"}
# harness plumbing, which belongs to build and the family helpers (implementations/*_support.py)
PLUMBING = {"contextlib", "tempfile", "shutil", "RunMetadata", "RunOptions", "profiler", "profiling",
            "Callback", "Metric"}


def _implementation_files():
    from implementations import REGISTRY

    modules = dict.fromkeys(m for impl in REGISTRY.values()
                            for m in (impl.module, impl.distributed.module if impl.distributed else None) if m)
    return [ROOT / (module.replace(".", "/") + ".py") for module in modules]


def _sections(path):
    """(title, first line, last line) of each section, in the file's order."""
    lines = path.read_text().splitlines()
    heads = [(i + 1, m["title"]) for i, line in enumerate(lines) if (m := SECTION.match(line))]
    return [(title, start, (heads[k + 1][0] - 1) if k + 1 < len(heads) else len(lines))
            for k, (start, title) in enumerate(heads)]


@pytest.mark.parametrize("path", _implementation_files(), ids=lambda p: p.stem)
def test_every_implementation_file_has_the_lectures_sections_and_one_build(path):
    """Reading one implementation teaches all: the same sections in the same order, the variants'
    builders and BUILDERS in the step section with no harness plumbing there, and one build."""
    sections = _sections(path)
    titles = [title for title, _, _ in sections]
    assert tuple(titles[:2]) == FIRST_SECTIONS and titles[-1] == "build", titles
    assert set(titles[2:-1]) <= MIDDLE_SECTIONS, titles
    tree = ast.parse(path.read_text())
    where = {title: (start, end) for title, start, end in sections}

    def inside(node, title):
        start, end = where[title]
        return start <= node.lineno <= end

    step_nodes = [node for node in tree.body if inside(node, "the step of each variant")]
    functions = {node.name for node in step_nodes if isinstance(node, ast.FunctionDef)}
    (builders,) = [node.value for node in step_nodes if isinstance(node, ast.Assign)
                   and [getattr(t, "id", None) for t in node.targets] == ["BUILDERS"]]
    assert all(isinstance(v, ast.Name) and v.id in functions for v in builders.values), "BUILDERS' builders"
    for node in step_nodes:  # one builder signature: what build prepared comes in one Start
        if isinstance(node, ast.FunctionDef) and node.name in {v.id for v in builders.values}:
            assert _signature(node) == "(cfg: RunConfig, start: Start) -> Trainer", (node.name, _signature(node))
    used = {n.id for node in step_nodes for n in ast.walk(node) if isinstance(n, ast.Name)} | \
           {n.attr for node in step_nodes for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    assert not used & PLUMBING, f"harness plumbing in the step section: {sorted(used & PLUMBING)}"
    (build,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "build"]
    assert inside(build, "build") and [a.arg for a in build.args.args] == ["cfg", "problem", "variant"]
    assert ast.unparse(build.returns) == "Trainer"


def _signature(function: ast.FunctionDef) -> str:
    """A builder's positional parameters and return, as written (keyword-only options, each with its
    default, are how two variants share one builder: build_compile calls build_module(compiled=True))."""
    params = ", ".join(f"{a.arg}: {ast.unparse(a.annotation)}" if a.annotation else a.arg for a in function.args.args)
    return f"({params}) -> {ast.unparse(function.returns) if function.returns else None}"


def test_the_shape_check_finds_plumbing_in_a_step_section(tmp_path):
    source = (ROOT / "implementations" / "numpy.py").read_text()
    bad = tmp_path / "numpy.py"
    bad.write_text(source.replace("def build_manual(cfg: RunConfig, start: Start) -> Trainer:\n",
                                  "def build_manual(cfg: RunConfig, start: Start) -> Trainer:\n"
                                  "    import tempfile\n    tempfile.mkdtemp()\n", 1))
    with pytest.raises(AssertionError, match="tempfile"):
        test_every_implementation_file_has_the_lectures_sections_and_one_build(bad)


def test_the_shape_check_finds_a_builder_of_another_signature(tmp_path):
    source = (ROOT / "implementations" / "numpy.py").read_text()
    bad = tmp_path / "numpy.py"
    bad.write_text(source.replace("def build_manual(cfg: RunConfig, start: Start) -> Trainer:\n",
                                  "def build_manual(cfg: RunConfig, x, y, w1, w2) -> Trainer:\n", 1))
    with pytest.raises(AssertionError, match="build_manual"):
        test_every_implementation_file_has_the_lectures_sections_and_one_build(bad)
