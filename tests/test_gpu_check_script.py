"""benchmarks/gpu_check.sh starts on a machine whose interpreter is python3 (no plain
`python`), or $PYTHON, and prints the interpreter and the versions it found first. Run here on
a copy of the script, with a stand-in interpreter that records the steps and answers only the
version query (through the real one), so nothing heavy runs."""
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("bash", "mkdir", "tee", "tail", "cat", "timeout", "dirname")


def stand_in(path, log):
    """An interpreter at ``path`` that logs its arguments and runs ``-c`` code for real."""
    path.write_text(f"#!/bin/sh\nif [ \"$1\" = -c ]; then echo -c >> '{log}'; "
                    f"exec '{sys.executable}' \"$@\"; fi\necho \"$@\" >> '{log}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def sandbox(tmp_path):
    """(copy of the repository's script, PATH with the shell tools and no python)."""
    if shutil.which("timeout") is None:
        pytest.skip("no timeout command")
    (tmp_path / "repo" / "benchmarks").mkdir(parents=True)
    script = tmp_path / "repo" / "benchmarks" / "gpu_check.sh"
    shutil.copy(os.path.join(ROOT, "benchmarks", "gpu_check.sh"), script)
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in TOOLS:
        os.symlink(shutil.which(name), tools / name)
    return script, tools


def run(script, path, **env):
    return subprocess.run(["bash", str(script), str(script.parent.parent / "out")],
                          env=dict(PATH=path, HOME=str(script.parent), **env),
                          capture_output=True, text=True, timeout=120)


def test_it_runs_every_step_with_python3_and_prints_what_it_found_first(sandbox, tmp_path):
    script, tools = sandbox
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls.txt"
    stand_in(bin_ / "python3", log)
    p = run(script, f"{bin_}:{tools}")
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[:5]
    assert first[0].startswith("python ") and sys.version.split()[0] in first[0]
    assert first[1] == f"numpy {np.__version__}"
    assert [line.split()[0] for line in first[1:]] == ["numpy", "cupy", "numba", "torch"]
    calls = log.read_text().splitlines()
    assert calls[0] == "-c"
    assert [c.split()[:2] for c in calls[1:]] == [["-m", "pytest"], ["train.py", "--arch"],
                                                  ["-m", "benchmarks.run"]]
    summary = (script.parent.parent / "out" / "summary.txt").read_text()
    assert summary.startswith(first[0]) and "cuda tests: exit 0" in summary


def test_python_is_taken_from_the_environment_or_its_absence_said(sandbox, tmp_path):
    script, tools = sandbox
    log = tmp_path / "calls.txt"
    mine = stand_in(tmp_path / "my-python", log)
    p = run(script, str(tools), PYTHON=str(mine))
    assert p.returncode == 0, p.stderr
    assert len(log.read_text().splitlines()) == 4
    p = run(script, str(tools))
    assert p.returncode == 2
    assert p.stderr.strip() == ("gpu_check: no python3 or python on PATH; set PYTHON to the "
                                "interpreter to use")
    p = run(script, str(tools), PYTHON="no-such-python")
    assert p.returncode == 2 and "PYTHON=no-such-python is not a command" in p.stderr
