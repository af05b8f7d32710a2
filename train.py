#!/usr/bin/env python3
"""Train a ZFNet-style convnet from scratch (thin command line over zfraw.training).

    python3 train.py --arch zf-32 --width 0.25 --data synthetic --epochs 10 --out runs/demo
    python3 train.py --out runs/demo --epochs 20 --resume     # continue (or extend) a run

A run folder is never overwritten: without --resume, an --out that holds a run is refused
(--overwrite deletes the old run first). Only one training writes a folder at a time. On
--resume the run's own settings are used; a setting given again must agree with them, except
--epochs, --lr, --schedule, --lr-step, --impl, --device and --ten-crop, which are applied.

Data-parallel over MPI ranks (README, "Scale-out over MPI"):

    mpiexec -n 2 python3 train.py --arch zf-64 --batch-size 128 --out runs/dp   # 2 x 64 images

Exit status: 0 finished, 1 the loss diverged (or a file could not be written), 2 bad input or
a refused run folder (one line on stderr; --debug shows the traceback), 130 stopped by Ctrl-C
(checkpoint saved at the next step boundary; a second Ctrl-C stops at once without saving).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from zfraw import distributed
from zfraw.checkpoint import os_error_line
from zfraw.data import DataError
from zfraw.settings import add_run_settings
from zfraw.training import HardStop, TrainConfig, TrainingDiverged, train


def parse_args(argv=None) -> argparse.Namespace:
    """The options the user gave; every run setting left out is absent from the namespace
    (argparse.SUPPRESS), so a resume can tell a given setting from a default."""
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_settings(p)
    p.add_argument("--out", default=argparse.SUPPRESS, help=f"run folder (default {d.out})")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its newest checkpoint")
    p.add_argument("--resume-from", metavar="CHECKPOINT", default=None,
                   help="continue the run in --out from this checkpoint (e.g. an epoch-NNN.npz "
                   "when last.npz is damaged)")
    p.add_argument("--overwrite", action="store_true", default=False,
                   help="start a new run in an --out that holds one, deleting the old run first")
    p.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                   help="no progress line")
    p.add_argument("--debug", action="store_true", default=False,
                   help="show the traceback of an error")
    return p.parse_args(argv)


# Options that are not run settings.
_CONTROL = ("resume", "resume_from", "overwrite", "debug", "no_progress")


def asked_settings(a: argparse.Namespace) -> dict:
    """The TrainConfig fields the user gave on the command line (field -> value)."""
    asked = {k: v for k, v in vars(a).items() if k not in _CONTROL}
    if getattr(a, "no_progress", False):
        asked["progress"] = False
    return asked


def main(argv=None) -> int:
    a = parse_args(argv)
    asked = asked_settings(a)
    cfg = dataclasses.replace(TrainConfig(), **asked)
    try:
        team = distributed.world()    # None unless started by mpiexec with several ranks
    except RuntimeError as e:
        return _fail(e, 2, a.debug)
    try:
        result = train(cfg, resume=a.resume, asked=asked, overwrite=a.overwrite,
                       resume_from=a.resume_from)
    except HardStop:
        print(f"stopped by a second Ctrl-C without saving; {cfg.out}/last.npz holds the last "
              "saved state, if any (--resume continues from it)", file=sys.stderr)
        return _abort(team, 130)
    except KeyboardInterrupt:   # before the first step (loading data): nothing to save
        print("stopped by Ctrl-C before training began; nothing was saved", file=sys.stderr)
        return _abort(team, 130)
    except TrainingDiverged as e:
        return _fail(e, 1, a.debug, team)
    except (DataError, ValueError) as e:          # RunError and CheckpointError included
        return _fail(e, 2, a.debug, team)
    except OSError as e:                           # e.g. a full disk while saving
        return _fail(e, 1, a.debug, team)
    except BaseException as e:                     # a bug: under MPI, the other ranks must end
        if team is None:
            raise
        import traceback
        traceback.print_exception(e)
        return _abort(team, 1)
    return 130 if result["status"] == "interrupted" else 0


def _fail(e: BaseException, code: int, debug: bool, team=None) -> int:
    """Print the error as one line (with its traceback under --debug) and return ``code``.
    Under MPI (``team``) an error every rank raised alike is printed by rank 0; any other
    ends the whole job (MPI_Abort), since the other ranks would wait for this one forever."""
    if team is not None and distributed.is_agreed(e):
        if not team.root:
            return code
    elif team is not None:
        print(f"error (MPI rank {team.rank} of {team.size}): {e}; aborting the job",
              file=sys.stderr, flush=True)
        return _abort(team, code)
    if debug:
        import traceback
        traceback.print_exception(e)
    print(f"error: {os_error_line(e) if isinstance(e, OSError) else e}", file=sys.stderr)
    return code


def _abort(team, code: int) -> int:
    """Return ``code``; under MPI end every rank first (the others may be inside a collective
    that this rank will never join)."""
    if team is not None:
        team.abort(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
