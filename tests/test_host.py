"""zfraw.host: the process settings that train.py, the benchmarks and the report apply."""
import os
import subprocess
import sys

import pytest

# A child process allocates 128 MiB, frees it, allocates it again and counts the page faults of
# the second allocation: none when the freed memory was kept, hundreds (2 MiB or 4 KiB pages)
# when glibc unmapped it. The child keeps the setting out of this test process.
CHILD = """
import resource, sys
import numpy as np
import zfraw.host
kept = zfraw.host.keep_freed_memory() if sys.argv[1] == "keep" else False
a = np.ones(2**25, np.float32); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(2**25, np.float32)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, Linux only")
def test_keep_freed_memory_reuses_pages():
    kept, faults = _faults("keep")
    assert kept
    assert faults < 8, f"{faults} page faults re-allocating 128 MiB with freed memory kept"
    _, faults_default = _faults("default")
    assert faults_default >= 32, "glibc's default should unmap the freed block (the control)"


def test_import_sets_openblas_thread_timeout_unless_set():
    code = "import os, zfraw; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    run = lambda env: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,  # noqa: E731
                                     text=True, check=True).stdout.strip()
    assert run(env) == "4"
    assert run(dict(env, OPENBLAS_THREAD_TIMEOUT="12")) == "12"
