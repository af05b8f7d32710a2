"""Every kernels/cuda/*.cu compiles with nvcc (as `make nvcc-check` does), both as the file on
disk and as the text the launcher hands to CuPy (shared headers pasted in), and with NVRTC, the
compiler CuPy's RawModule uses on the GPU machine (no host headers there). Runs without a GPU;
skipped when nvcc / the NVRTC library is absent (the `test` extra installs NVRTC's wheel on
Linux). A CUDA error thus fails the suite on any machine with either compiler."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kernels.cuda import _loader, nvrtc_check

SOURCES = sorted(_loader.SOURCE_DIR.glob("*.cu"))
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")


def _nvcc(path: Path, out: Path):
    """Compile one translation unit as the Makefile's nvcc-check; returns (rc, log)."""
    cmd = [NVCC, "-std=c++17", "-arch=sm_90", "-c", str(path), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_every_family_has_a_source():
    assert {p.stem for p in SOURCES} == {"conv", "pool", "avgpool", "lrn", "elementwise", "loss"}


@needs_nvcc
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_file_compiles(path, tmp_path):
    rc, log = _nvcc(path, tmp_path / "k.o")
    assert rc == 0, f"nvcc failed on {path.name}:\n{log}"


@needs_nvcc
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_launcher_text_compiles(path, tmp_path):
    text = _loader.source(path.stem)
    assert '#include "' not in text  # RawModule gets one self-contained text
    unit = tmp_path / path.name
    unit.write_text(text)
    rc, log = _nvcc(unit, tmp_path / "k.o")
    assert rc == 0, f"nvcc failed on the launcher's text of {path.name}:\n{log}"


NVRTC = nvrtc_check.find_nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="no NVRTC library (pip install nvidia-cuda-nvrtc-cu12)")
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_launcher_text_compiles_with_nvrtc(path):
    import ctypes

    ok, log = nvrtc_check.compile_source(ctypes.CDLL(NVRTC), path.name, _loader.source(path.stem))
    assert ok, f"NVRTC failed on the launcher's text of {path.name}:\n{log}"


@pytest.mark.skipif(NVRTC is None, reason="no NVRTC library (pip install nvidia-cuda-nvrtc-cu12)")
def test_nvrtc_check_rejects_what_nvrtc_cannot_compile():
    """The check can fail: a host header (fine for nvcc, absent under NVRTC) and a syntax error."""
    import ctypes

    lib = ctypes.CDLL(NVRTC)
    kernel = 'extern "C" __global__ void k(float* x) { x[0] = 1; }'
    assert nvrtc_check.compile_source(lib, "ok.cu", kernel)[0]
    assert not nvrtc_check.compile_source(lib, "h.cu", "#include <vector>\n" + kernel)[0]
    assert not nvrtc_check.compile_source(lib, "s.cu", kernel.replace(";", ""))[0]


def test_make_targets_named_in_the_kernels_exist():
    """Every ``make <target>`` quoted in kernels/ and tests/ is a target of the Makefile (the
    NVRTC check's docstring once named a target that never existed)."""
    import re

    root = Path(__file__).resolve().parent.parent
    targets = set(re.findall(r"^([\w.-]+):", (root / "Makefile").read_text(), re.M))
    files = [p for d in ("kernels", "tests") for p in sorted((root / d).rglob("*"))
             if p.suffix in (".py", ".cu", ".cuh")]
    named = {(p.relative_to(root).as_posix(), t) for p in files
             for t in re.findall(r"`{1,2}make\s+([\w.-]+)", p.read_text())}
    assert named, "the scan found no make command at all"
    missing = sorted((f, t) for f, t in named if t not in targets)
    assert not missing, f"make targets that the Makefile lacks: {missing}"
