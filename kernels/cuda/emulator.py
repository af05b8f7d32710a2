"""Runs kernels/cuda/*.cu on the CPU: each file compiled by g++ with host_shim.h (beside it),
each kernel called through ctypes, one host thread per CUDA thread of a block, blocks in turn.
The tests (tests/test_kernels.py, tests/test_kernels_cuda.py) and ``python -m benchmarks.op``
use it to check the CUDA versions on a machine without a GPU.

An emulated kernel is a drop-in for a CuPy RawModule function, ``k(grid, block, args)``, so
the real Python launchers run unchanged on NumPy arrays. Before each launch the arguments are
checked against the kernel's C signature, parsed from the .cu file: array dtypes, scalar
NumPy types (a Python int where the kernel takes ``long long`` is an error) and contiguity.
So the launchers' argument lists are verified too, which a GPU run would not report clearly.
What this cannot check: NVRTC compilation (see tests/test_cuda_sources.py), GPU memory
behaviour and speed.
"""
from __future__ import annotations

import contextlib
import ctypes
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from kernels.cuda import _loader

SHIM = Path(__file__).resolve().parent / "host_shim.h"
GXX = shutil.which("g++")
MAX_BLOCKS = 3  # fewer blocks than the launcher asks for exercises the grid-stride loops
MAX_THREADS = 32  # a power of two, as the reductions need; keeps thread counts small
TIMEOUT_S = 60.0

# C parameter type (after substituting T) -> (ctypes type, what the launcher must pass).
_SCALARS = {"long long": (ctypes.c_longlong, np.int64), "float": (ctypes.c_float, np.float32),
            "double": (ctypes.c_double, np.float64),
            "unsigned int": (ctypes.c_uint, np.uint32)}
_POINTEES = {"float": np.float32, "double": np.float64, "long long": np.int64,
             "unsigned char": np.uint8}
_SUFFIX_TYPE = {"f32": "float", "f64": "double"}
_KERNEL_DECL = re.compile(r'extern "C" __global__ void (\w+)_##SUF\(([^)]*)\)')


def _signatures(stem: str) -> dict[str, list[str]]:
    """{kernel name without suffix: [parameter C types with T]} from <stem>.cu's macros."""
    text = (_loader.SOURCE_DIR / f"{stem}.cu").read_text().replace("\\\n", " ")
    sigs = {}
    for name, params in _KERNEL_DECL.findall(text):
        types = []
        for p in params.split(","):
            words = p.replace("*", " * ").split()[:-1]  # drop the parameter name
            types.append(" ".join(w for w in words if w != "const"))
        sigs[name] = types
    return sigs


class Emulator:
    """Compiles each .cu once (into ``build_dir``) and hands out emulated kernels."""

    def __init__(self, build_dir: Path):
        self.build_dir = build_dir
        self._libs: dict[str, ctypes.CDLL] = {}
        self._sigs: dict[str, dict[str, list[str]]] = {}

    def _lib(self, stem: str) -> ctypes.CDLL:
        if stem not in self._libs:
            out = self.build_dir / f"{stem}.so"
            cmd = [GXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-x", "c++",
                   "-include", str(SHIM), str(_loader.SOURCE_DIR / f"{stem}.cu"), "-o", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode:
                raise RuntimeError(f"g++ failed on {stem}.cu:\n{done.stderr}")
            self._libs[stem] = ctypes.CDLL(str(out))
            self._sigs[stem] = _signatures(stem)
        return self._libs[stem]

    def kernel(self, stem: str, name: str):
        """Stand-in for ``_loader.kernel``: the emulated kernel ``name`` of <stem>.cu."""
        lib = self._lib(stem)
        base, suffix = name.rsplit("_", 1)
        params = [t.replace("T", _SUFFIX_TYPE[suffix]) if t in ("T", "T *") else t
                  for t in self._sigs[stem][base]]
        return _EmulatedKernel(lib, name, params)


class _EmulatedKernel:
    def __init__(self, lib, name: str, params: list[str]):
        self.lib, self.name, self.params = lib, name, params
        self.fn = getattr(lib, name)
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_void_p if t.endswith("*") else _SCALARS[t][0]
                            for t in params]

    def _convert(self, args) -> list:
        """ctypes values for ``args``, after checking each against the C parameter type."""
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} "
                            f"parameters {self.params}")
        out = []
        for i, (a, t) in enumerate(zip(args, self.params)):
            if t.endswith("*"):
                want = _POINTEES[t[:-1].strip()]
                if not (isinstance(a, np.ndarray) and a.dtype == want and a.flags.c_contiguous):
                    raise TypeError(f"{self.name} arg {i}: expected a contiguous {np.dtype(want)}"
                                    f" array for {t}, got {type(a).__name__} "
                                    f"{getattr(a, 'dtype', '')}")
                out.append(a.ctypes.data)
            else:
                want = _SCALARS[t][1]
                if type(a) is not want:
                    raise TypeError(f"{self.name} arg {i}: expected {want.__name__} for {t}, "
                                    f"got {type(a).__name__}")
                out.append(a.item())
        return out

    def __call__(self, grid, block, args):
        cargs = self._convert(args)
        blocks = min(int(grid[0]), MAX_BLOCKS)
        threads = min(int(block[0]), MAX_THREADS)
        self.lib.zf_emu_configure(ctypes.c_uint(blocks), ctypes.c_uint(threads))
        errors = []

        def run(b, t):
            try:
                self.lib.zf_emu_set_thread(ctypes.c_uint(b), ctypes.c_uint(t))
                self.fn(*cargs)  # ctypes releases the GIL: the threads run (and wait) for real
            except Exception as e:  # noqa: BLE001 - reported after the join
                errors.append(e)

        for b in range(blocks):  # blocks one after another: __shared__ is one static copy
            pool = [threading.Thread(target=run, args=(b, t), daemon=True)
                    for t in range(threads)]
            for th in pool:
                th.start()
            for th in pool:
                th.join(TIMEOUT_S)
                if th.is_alive():
                    raise RuntimeError(f"{self.name}: block {b} hung (mismatched __syncthreads?)")
        if errors:
            raise errors[0]


def available() -> bool:
    """True when g++ is on PATH (the emulation needs nothing else)."""
    return GXX is not None


@contextlib.contextmanager
def emulating(emulator: Emulator):
    """Inside the block the launchers of kernels/cuda, which look their kernels up through
    ``_loader.kernel``, run ``emulator``'s instead: call them with NumPy arrays."""
    saved = _loader.kernel
    _loader.kernel = emulator.kernel
    try:
        yield emulator
    finally:
        _loader.kernel = saved
