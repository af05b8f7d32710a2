"""Helper of tests/test_distributed.py (run under mpiexec -n 2): trains a tiny net for 3 epochs
and kills rank 1 with SIGKILL at step 2 of the second epoch, after the first epoch's checkpoint.

    mpiexec -n 2 python tests/mpi_kill.py OUT
"""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from zfraw import distributed  # noqa: E402
from zfraw.training import TrainConfig, train  # noqa: E402


def hook(epoch, step, net):
    if distributed.world().rank == 1 and (epoch, step) == (1, 2):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    cfg = TrainConfig(arch="zf-32", width=0.125, data="synthetic:64", epochs=3, batch_size=16,
                      init="he", input_scale=1 / 64, dropout=0.0, impl="numpy", seed=3,
                      out=sys.argv[1], progress=False)
    train(cfg, step_hook=hook)
    print("not killed?", flush=True)
