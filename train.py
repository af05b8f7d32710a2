#!/usr/bin/env python3
"""Train a ZFNet-style convnet from scratch (thin command line over zfraw.training).

    python3 train.py --arch zf-32 --width 0.25 --data synthetic --epochs 10 --out runs/demo
    python3 train.py --out runs/demo --epochs 20 --resume     # continue (or extend) a run

Exit status: 0 finished, 130 stopped by Ctrl-C (checkpoint saved at the next step boundary;
a second Ctrl-C stops at once without saving), 1 diverged or bad input.
"""
from __future__ import annotations

import argparse
import sys

from zfraw.data import DataError
from zfraw.nets import ARCHS
from zfraw.ops.registry import IMPLS
from zfraw.optim import SCHEMES
from zfraw.training import SCHEDULES, HardStop, TrainConfig, train


def parse_args(argv=None) -> argparse.Namespace:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default=d.arch)
    p.add_argument("--data", default=d.data, help="synthetic[:N] | tiny-imagenet:PATH | "
                   "folder:PATH | caltech101:PATH (default %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="plateau: x0.1 when val error stalls 2 epochs; step: x0.1 every --lr-step")
    p.add_argument("--lr-step", type=int, default=None, help="StepLR period (default epochs/3)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device)
    p.add_argument("--impl", choices=IMPLS, default=None, help="kernels (default: fastest present)")
    p.add_argument("--out", default=d.out, help="run folder (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init", choices=SCHEMES, default=d.init)
    p.add_argument("--width", type=float, default=d.width, help="channel multiplier")
    p.add_argument("--ten-crop", action="store_true", help="validate on 10 crops (else centre)")
    p.add_argument("--resize", type=int, default=None,
                   help="stored image side (default 256 for 224 nets, else crop*9/8)")
    p.add_argument("--input-scale", type=float, default=d.input_scale,
                   help="multiplies mean-subtracted pixels (1: paper's 0..255; 1/64 suits --init he)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout probability of fc6/fc7 (default: the paper's 0.5)")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default $ZFRAW_CACHE "
                   "or ~/.cache/zfraw)")
    p.add_argument("--on-error", choices=("warn", "raise"), default=d.on_error,
                   help="unreadable image files: skip with a warning, or stop")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    cfg = TrainConfig(arch=a.arch, data=a.data, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                      momentum=a.momentum, weight_decay=a.weight_decay, schedule=a.schedule,
                      lr_step=a.lr_step, seed=a.seed, device=a.device, impl=a.impl, out=a.out,
                      init=a.init, width=a.width, ten_crop=a.ten_crop, resize=a.resize, input_scale=a.input_scale,
                      dropout=a.dropout,
                      cache_dir=a.cache_dir, on_error=a.on_error, progress=not a.no_progress)
    try:
        result = train(cfg, resume=a.resume)
    except (DataError, FileNotFoundError, ValueError, RuntimeError) as e:  # incl. TrainingDiverged
        print(f"error: {e}", file=sys.stderr)
        return 1
    except HardStop:
        print(f"stopped by a second Ctrl-C without saving; {a.out}/last.npz holds the last saved "
              "state (--resume continues from it)", file=sys.stderr)
        return 130
    return 130 if result["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
