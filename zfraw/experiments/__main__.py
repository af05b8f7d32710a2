"""python -m zfraw.experiments NAME --data SPEC --out DIR [settings]

    table2, table3                 ImageNet-style trainings (--data tiny-imagenet:PATH, ...)
    table4, table5, table7, fig9   Caltech transfer (--data caltech101:PATH or caltech256:PATH,
                                   --source RUN: the pretrained net's run folder)

Every training setting of train.py may be given (--arch is the base net: zf or zf-64 for
table2, any for table3, the from-scratch net for table4/5 and fig9); they apply to every
row. Re-run the same command to continue an interrupted experiment. Exit status: 0 done, 1 the
loss diverged or a file could not be written (a full disk: one line naming it), 2 bad input (one
line), 130 interrupted by Ctrl-C (the row in training saved, no further row started, the table
written with the rows so far).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ..checkpoint import os_error_line
from ..data import DataError
from ..rundir import check_out_folder
from ..settings import add_run_settings, layer_factors, run_settings
from ..training import HardStop, TrainConfig, TrainingDiverged
from . import CALTECH_EXPERIMENTS, EXPERIMENTS


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m zfraw.experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--out", required=True, help="experiment folder (one run folder per row)")
    add_run_settings(p, arch_default="zf-64")
    p.add_argument("--seeds", type=int, default=1,
                   help="table2/table3: train every row with seeds --seed, --seed+1, ... (one "
                   "run folder each, OUT/<row>/seed-S); the tables give each row's mean and 95%% "
                   "interval over seeds and images (default 1)")
    p.add_argument("--replication-lr-mult", type=layer_factors, default=None,
                   metavar="LAYER=F[,LAYER=F]",
                   help="table2: the replication's own per-layer rates in place of --lr-mult "
                   "(e.g. conv1=1 where --lr-mult conv1=10 suits zf's first layer only)")
    p.add_argument("--source", default=None, help="Caltech experiments: the pretrained run")
    p.add_argument("--splits", type=int, default=5, help="Caltech random splits (default 5)")
    p.add_argument("--train-sizes", type=int, nargs="+", default=None,
                   help="Caltech training images per class (default: the paper's)")
    p.add_argument("--no-scratch", action="store_true",
                   help="table4/5: skip the from-scratch trainings")
    p.add_argument("--scratch", action="store_true", help="fig9: also train from scratch")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--debug", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    settings = {"arch": "zf-64", **run_settings(a)}
    base = dataclasses.replace(TrainConfig(), progress=not a.no_progress, **settings)
    try:
        if a.splits < 1:
            raise ValueError(f"--splits must be >= 1, got {a.splits}")
        if a.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {a.seeds}")
        check_out_folder(a.out)
        if a.experiment in CALTECH_EXPERIMENTS:
            scratch = a.scratch if a.experiment == "fig9" else not a.no_scratch
            result = CALTECH_EXPERIMENTS[a.experiment](base, a.out, print, a.source, a.splits,
                                                       a.train_sizes, scratch)
        else:
            extra = ({"replication_lr_mult": a.replication_lr_mult}
                     if a.replication_lr_mult is not None else {})
            if extra and a.experiment != "table2":
                raise ValueError("--replication-lr-mult is for table2 only")
            result = EXPERIMENTS[a.experiment](base, a.out, print, seeds=a.seeds, **extra)
    except (HardStop, KeyboardInterrupt):
        print("stopped by Ctrl-C; run the same command to continue", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (DataError, ValueError) as e:
        if a.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                  # e.g. a full disk while saving (the message names it)
        if a.debug:
            raise
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 1
    print(f"results: {a.out}/{a.experiment}.md")
    if result.get("interrupted"):
        print("stopped by Ctrl-C; run the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
