"""Compile every kernels/cuda/*.cu the way CuPy's RawModule will on a GPU machine: the same text
(shared headers inlined by :func:`kernels.cuda._loader.source`), NVRTC, ``-std=c++17``, for
Hopper (compute_90). No GPU or driver is needed, only the NVRTC library, so a kernel that nvcc
accepts but NVRTC does not (a host header, say) is caught on a CPU-only machine.

    python -m kernels.cuda.nvrtc_check [path/to/libnvrtc.so]

The test suite runs the same check (tests/test_cuda_sources.py, so ``make test`` does); the
Makefile's ``nvcc-check`` target compiles with nvcc only. Without a path it looks for the NVRTC
of the ``nvidia-cuda-nvrtc-cu12`` wheel (pyproject.toml's ``test`` extra, which ``make test``
installs into the venv), then for one the loader can find. Exit status 0 when every file
compiles, 1 when one does not (its log is printed), 2 when no NVRTC is found.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

from kernels.cuda import _loader

OPTIONS = (b"-std=c++17", b"-arch=compute_90")


def find_nvrtc() -> str | None:
    """Path of an NVRTC shared library, or None."""
    try:
        import nvidia.cuda_nvrtc  # the pip wheel, a namespace package without __file__
        for root in nvidia.cuda_nvrtc.__path__:
            found = sorted(Path(root, "lib").glob("libnvrtc.so.*"))
            if found:
                return str(found[0])
    except ImportError:
        pass
    return ctypes.util.find_library("nvrtc")


def compile_source(lib, name: str, text: str) -> tuple[bool, str]:
    """(compiled?, NVRTC's log) for one source text."""
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), name.encode(), 0, None, None):
        return False, "nvrtcCreateProgram failed"
    try:
        rc = lib.nvrtcCompileProgram(prog, len(OPTIONS), (ctypes.c_char_p * len(OPTIONS))(*OPTIONS))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        return rc == 0, log.value.decode(errors="replace").strip()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else find_nvrtc()
    if path is None:
        print("nvrtc_check: no NVRTC library found (pip install nvidia-cuda-nvrtc-cu12)",
              file=sys.stderr)
        return 2
    lib = ctypes.CDLL(path)
    failed = 0
    for cu in sorted(_loader.SOURCE_DIR.glob("*.cu")):
        ok, log = compile_source(lib, cu.name, _loader.source(cu.stem))
        print(f"nvrtc {cu.name}: {'ok' if ok else 'FAILED'}" + (f"\n{log}" if log else ""))
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
