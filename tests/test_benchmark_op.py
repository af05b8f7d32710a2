"""``python -m benchmarks.op NAME``: one primitive's versions checked against the reference and
timed; no timing is asserted here. Also what lets a reader follow a primitive from zfraw.ops to
its kernels: plain dispatchers with the references' signatures, kernel files that name their
siblings."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import op as op_command
from benchmarks.cases import primitive_cases
from zfraw import ops
from zfraw.ops import registry

ROOT = Path(__file__).resolve().parents[1]


def run_command(*argv):
    """(exit status, output lines) of benchmarks.op's main."""
    lines = []
    return op_command.main(list(argv), log=lines.append), lines


def test_no_name_lists_every_primitive():
    rc, lines = run_command()
    assert rc == 0
    listed = {line.split()[0] for line in lines[1:] if line.startswith("  ")}
    assert listed == set(registry.ops())


def test_an_unknown_name_is_a_one_line_error():
    done = subprocess.run([sys.executable, "-m", "benchmarks.op", "maxpool_forward"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unknown primitive 'maxpool_forward'" in done.stderr


def test_quick_run_of_one_primitive_checks_and_times_every_version():
    rc, lines = run_command("relu_fwd", "--quick", "--no-torch")
    text = "\n".join(lines)
    assert rc == 0, text
    assert "MISMATCH" not in text
    for name in registry.implementations("relu_fwd"):
        if name != "numpy":
            assert re.search(rf"^  {re.escape(name)} +12/12 agree", text, re.M), text
    assert "relu1" in text and "GB/s" in text  # the timing table ran


def test_a_wrong_variant_makes_it_fail_and_is_named(monkeypatch):
    if not registry.available("numba"):
        pytest.skip("numba not usable here")
    registry.implementations("relu_fwd")  # loads the real kernels first
    monkeypatch.setitem(registry._table, ("relu_fwd", "numba:wrong"), lambda x: np.abs(x))
    rc, lines = run_command("relu_fwd", "--no-time")
    assert rc == 1
    mismatch = [line for line in lines if line.startswith("MISMATCH")]
    assert len(mismatch) == 1 and "numba:wrong" in mismatch[0], lines
    assert "relu_fwd" in mismatch[0] and "max error" in mismatch[0]


def test_a_crashing_variant_is_a_mismatch_too(monkeypatch):
    if not registry.available("numba"):
        pytest.skip("numba not usable here")
    registry.implementations("sgd_update")

    def broken(param, grad, velocity, lr, momentum, weight_decay):
        raise RuntimeError("kernel launch failed")

    monkeypatch.setitem(registry._table, ("sgd_update", "numba:broken"), broken)
    rc, lines = run_command("sgd_update", "--no-time")
    assert rc == 1
    assert any(line.startswith("MISMATCH: sgd_update numba:broken") and "RuntimeError" in line
               for line in lines), lines


def test_every_primitive_has_a_benchmark_shape():
    found = {case["op"] for case in primitive_cases(1, np.random.default_rng(0))}
    assert found == set(registry.ops())


def test_dispatchers_are_plain_functions_with_the_references_signatures():
    for name in registry.ops():
        fn, ref = getattr(ops, name), registry.registered(name)["numpy"]
        assert fn.__module__ == "zfraw.ops" and fn.__code__.co_name == name
        assert [(p.name, p.default) for p in inspect.signature(fn).parameters.values()] == \
               [(p.name, p.default) for p in inspect.signature(ref).parameters.values()], name


def _kernel_files() -> dict[str, tuple[set[str], set[str]]]:
    """{file: (its siblings, its primitives)} for every file with a version of a primitive (the
    reference's module, Numba and CUDA kernel modules, .cu files); the siblings are the other
    files of the same primitives."""
    import kernels.cuda  # noqa: F401 - registers the launchers

    families = {}
    for name in registry.ops():
        files = {f for impl_files in op_command.source_files(name).values() for f in impl_files}
        for f in files:
            siblings, prims = families.setdefault(f, (set(), set()))
            siblings.update(files - {f})
            prims.add(name)
    return families


def test_every_kernel_file_opens_with_its_siblings():
    """The first lines of each file name the reference, the other backends' files, the case
    table and the command for one of its primitives, so a reader can go from any one to the
    others."""
    for path, (siblings, prims) in _kernel_files().items():
        head = "\n".join((ROOT / path).read_text().splitlines()[:16])
        missing = [s for s in sorted(siblings) + ["kernels/kernel_cases.py"] if s not in head]
        if not any(f"python -m benchmarks.op {p}" in head for p in prims):
            missing.append(f"python -m benchmarks.op <one of {', '.join(sorted(prims))}>")
        assert not missing, f"{path} does not open with {missing}"
