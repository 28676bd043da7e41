"""Bad input through the real command lines: one line naming the problem, exit status 2, no traceback."""

import json

import pytest

from implementations import REGISTRY

ENTRY_POINTS = [("compare.py",), ("-m", "implementations.numpy")]

BAD_INPUTS = [
    (("--batch", "0"), "--batch must be an integer >= 1, got 0"),
    (("--hidden", "-3"), "--hidden must be an integer >= 1, got -3"),
    (("--lr", "-1e-6"), "--lr must be a finite number > 0, got -1e-06"),
    (("--lr", "nan"), "--lr must be a finite number > 0"),
    (("--steps", "0"), "--steps must be an integer >= 1"),
    (("--threads", "0"), "--threads must be an integer >= 1"),
    (("--dtype", "float16"), "--dtype must be one of float32, float64, got 'float16'"),
    (("--batch", "many"), "argument --batch/-N: invalid int value: 'many'"),
    (("--precision", "fp8"), "fp8"),  # each entry point names the allowed: full, bf16-mixed
    (("--precision", "bf16-mixed", "--dtype", "float64"), "--precision bf16-mixed keeps float32 master weights"),
    (("--d-in", "10000000", "--hidden", "100000"), "GiB allowed (half this machine's memory)"),
]


def assert_one_line_error(proc, expected):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: " ".join(e))
@pytest.mark.parametrize("args,expected", BAD_INPUTS, ids=lambda a: str(a))
def test_bad_config_is_a_one_line_error(cli, entry, args, expected):
    assert_one_line_error(cli(*entry, *args), expected)


@pytest.mark.parametrize("args,expected", [
    (("--frameworks", "caffe"), "--frameworks: unknown caffe; allowed: numpy, torch"),
    (("--variants", "magic"), "--variants: unknown magic"),
    (("--device", "tpu"), "--device: unknown tpu; allowed: cpu, gpu or all"),
    (("--timeout", "0"), "--timeout must be > 0"),
])
def test_bad_selection_is_a_one_line_error(cli, args, expected):
    assert_one_line_error(cli("compare.py", *args), expected)


def test_out_that_cannot_be_written_is_refused_before_anything_runs(cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = cli("compare.py", "--out", str(blocker / "sub"))
    assert_one_line_error(proc, "cannot write there")
    assert "[1/" not in proc.stderr


def test_unknown_variant_of_one_implementation(cli):
    proc = cli("-m", "implementations.numpy", "--variant", "autograd")
    assert_one_line_error(proc, "argument --variant: invalid choice: 'autograd'")


def test_help_documents_every_shared_flag(cli):
    pytest.importorskip("torch", reason="torch not installed: pip install -e '.[torch]'")  # its module's --help
    for entry in ENTRY_POINTS + [("-m", REGISTRY["torch"].module)]:
        proc = cli(*entry, "--help")
        assert proc.returncode == 0, proc.stderr
        for flag in ("--batch", "--d-in", "--hidden", "--d-out", "--steps", "--lr", "--dtype", "--seed",
                     "--threads", "--device"):
            assert flag in proc.stdout, (entry, flag)


def test_implementation_runs_alone_and_writes_its_result(cli, tmp_path):
    out = tmp_path / "numpy.json"
    proc = cli("-m", "implementations.numpy", "--steps", "20", "--dtype", "float64", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["framework"] == "numpy" and data["variant"] == REGISTRY["numpy"].variants[0]
    assert data["status"] == "ok" and data["x_noise"] == 0.0 and data["weights_x_noise"] == 0.0
    assert len(data["losses"]) == 20
    assert "numpy/manual/cpu/float64: ok" in proc.stdout
