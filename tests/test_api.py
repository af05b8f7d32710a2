"""The package's face: what ``import zfraw`` exposes, and what the backend says when CUDA is asked
for and cannot be had."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zfraw
from zfraw import backend

ROOT = Path(__file__).resolve().parent.parent


def test_import_zfraw_exposes_the_main_entry_points_documented():
    for name in ("build", "Net", "ARCHS", "use_impl", "layers", "nets", "ops", "backend"):
        assert name in zfraw.__all__, name
    for name in zfraw.__all__:
        obj = getattr(zfraw, name)
        if name in ("ARCHS", "__version__"):
            continue
        assert (obj.__doc__ or "").strip(), f"zfraw.{name} has no docstring"
        if name not in ("layers", "nets", "ops", "backend"):
            assert callable(obj), name
    assert zfraw.build is zfraw.nets.build and zfraw.Net is zfraw.nets.Net
    assert "zf-32" in zfraw.ARCHS and zfraw.layers.Conv2d


def test_build_and_forward_from_the_top_level():
    net = zfraw.build("zf-32", 10, width=0.25)
    assert isinstance(net, zfraw.Net)
    x = np.random.default_rng(0).standard_normal((2,) + net.input_shape).astype(np.float32)
    with zfraw.use_impl("numpy"):
        logits = net.eval().forward(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert np.isfinite(logits).all() and logits.std() > 0


def test_openblas_default_is_set_before_numpy_is_imported():
    """``import zfraw`` imports NumPy now, so the OPENBLAS_THREAD_TIMEOUT default (zfraw/host.py)
    must be in the environment by the time NumPy's import starts."""
    code = """
import os, sys
os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            print("at numpy:", os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
        return None
sys.meta_path.insert(0, Watch())
import zfraw
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[0] == "at numpy: 4", out


def test_asking_for_cuda_shows_why_cupy_is_unusable(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error",
                        ImportError("libcudart.so.12: cannot open shared object file"))
    assert not backend.cuda_available()
    assert "libcudart.so.12" in backend.cuda_unavailable_reason()
    for ask in (lambda: backend.check_device("cuda"), backend.cupy_module,
                lambda: backend.to_device(np.zeros(2), "cuda")):
        with pytest.raises(RuntimeError, match=r"device 'cuda'.*ImportError: libcudart\.so\.12"):
            ask()
    assert backend.check_device("cpu") == "cpu"
