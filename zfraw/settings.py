"""A run's settings as command-line options, written once: ``train.py`` and
``python -m zfraw.experiments`` both take them (every experiment row is a run).

Each option's default is ``argparse.SUPPRESS``: a setting left out is absent from the parsed
namespace, so a resume can tell a setting the user gave from a default (the defaults are
:class:`zfraw.training.TrainConfig`'s)."""
from __future__ import annotations

import argparse
import dataclasses

from .nets import ARCHS
from .ops.registry import IMPLS
from .optim import SCHEMES
from .training import SCHEDULES, TrainConfig


def layer_factors(text: str) -> dict:
    """'conv1=10,fc8=0.5' -> {'conv1': 10.0, 'fc8': 0.5} (argparse reports the error)."""
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected LAYER=FACTOR, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: {value!r} is not a number") from None
    return out


def add_run_settings(p: argparse.ArgumentParser, arch_default: str | None = None) -> None:
    """Add one option per run setting (every :class:`TrainConfig` field but ``out`` and
    ``progress``) to ``p``."""
    d = TrainConfig()
    arch_default = arch_default or d.arch
    S = argparse.SUPPRESS

    def add(*names, **kw):
        p.add_argument(*names, default=S, **kw)

    add("--arch", help=f"{' | '.join(ARCHS)}, each optionally with variants: zf-64+no-fc67 "
        f"(python -m zfraw.nets --variants lists them; default {arch_default})")
    add("--data", help="synthetic[:N] | tiny-imagenet[-N]:PATH | folder:PATH | caltech101:PATH "
        f"(default {d.data})")
    add("--epochs", type=int, help=f"total epochs of the run (default {d.epochs})")
    add("--batch-size", type=int, help=f"(default {d.batch_size})")
    add("--lr", type=float, help=f"learning rate (default {d.lr})")
    add("--momentum", type=float, help=f"(default {d.momentum})")
    add("--weight-decay", type=float, help=f"(default {d.weight_decay})")
    add("--schedule", choices=SCHEDULES,
        help="plateau: x0.1 when the held-out (else validation) error stalls 2 epochs; step: "
        f"x0.1 every --lr-step (default {d.schedule})")
    add("--lr-step", type=int, help="StepLR period (default epochs/3)")
    add("--seed", type=int, help=f"(default {d.seed})")
    add("--device", choices=("cpu", "cuda"), help=f"(default {d.device})")
    add("--impl", choices=IMPLS, help="kernels (default: fastest present)")
    add("--init", choices=SCHEMES, help=f"(default {d.init})")
    add("--width", type=float, help="channel multiplier (default 1)")
    add("--ten-crop", action="store_true", help="validate on 10 crops (else centre)")
    add("--resize", type=int, help="stored image side (default 256 for 224 nets, else crop*9/8)")
    add("--input-scale", type=float,
        help="multiplies mean-subtracted pixels (1: paper's 0..255; 1/64 suits --init he)")
    add("--dropout", type=float, help="dropout probability of fc6/fc7 (default: the paper's 0.5)")
    add("--renorm-radius", type=float,
        help=f"filter RMS limit (default the paper's {d.renorm_radius}; 0: none)")
    add("--init-from", metavar="CHECKPOINT",
        help="start every layer but the classifier from this checkpoint or run folder "
        "(transfer learning)")
    add("--lr-mult", type=layer_factors, metavar="LAYER=F[,LAYER=F]",
        help="multiply one layer's learning rate, e.g. conv1=10 (Caffe's lr_mult)")
    add("--init-scale", type=layer_factors, metavar="LAYER=F[,LAYER=F]",
        help="multiply one layer's initial weights, e.g. conv1=0.0625")
    add("--init-bias", type=layer_factors, metavar="LAYER=V[,LAYER=V]",
        help="start one layer's biases at V, e.g. conv5=1 (Krizhevsky's ReLUs start on)")
    add("--holdout", type=int, metavar="K",
        help="hold out the last K training images of each class and evaluate them every epoch; "
        "the plateau schedule then decides on them, never on the validation set (default 0)")
    add("--val-from-train", type=int, metavar="K",
        help="move K more training images of each class into the validation set (never "
        "trained on, never decided on; default 0)")
    add("--cache-dir", help="decoded-image cache (default $ZFRAW_CACHE or ~/.cache/zfraw)")
    add("--on-error", choices=("warn", "raise"),
        help="unreadable image files: skip with a warning, or stop")


def run_settings(a: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields given in ``a`` (field -> value)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(a).items() if k in fields}
