"""The atlas's command line, and the report's options it is turned into: the subject (a run or an
imported net, its images, its conv layers) is made by the report's own code
(:func:`zfraw.report.subject.subject_of`), from the report's options, so that both read the same
images through the same input convention and pick the same layers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..report.options import add_subject_options, atlas_folder, check_source
from ..report.options import parse_args as report_parse_args

# What the atlas passes on to the report's options, as given (None: the report's default).
SHARED = ("checkpoint", "data", "preprocess", "labels", "max_image_mib", "cache_dir")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m zfraw.atlas",
                                description=sys.modules[__package__].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_subject_options(p, "--run's checkpoint to show (default: the newest, last.npz); the "
                        "evolution strips read every epoch-NNN.npz")
    p.add_argument("--out", default=None, help="atlas folder (default RUN/atlas, or MODEL's "
                   "folder/atlas-<stem>)")
    p.add_argument("--limit", type=int, default=None,
                   help="validation images searched (default: all of them)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--evolution-images", type=int, default=256,
                   help="training images searched at each saved epoch (default 256: the same "
                   "seeded sample as the report's Fig. 4)")
    p.add_argument("--save-every", type=int, default=1000, metavar="N",
                   help="save the pass's state every N images, to resume it after an "
                   "interruption (default 1000)")
    p.add_argument("--quality", type=int, default=80,
                   help="WebP quality of the pictures, 1-100 (default 80)")
    p.add_argument("--lossless", action="store_true",
                   help="lossless WebP pictures (the exact pixels; several times larger)")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default: the run's, "
                   "else $ZFRAW_CACHE or ~/.cache/zfraw)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


def check_args(args) -> None:
    """Refuse, before any work, options that cannot be honoured (ValueError, one line)."""
    for name in ("limit", "batch_size", "evolution_images", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {args.quality}")


def report_args(args):
    """The report's options for the same subject: the atlas's source options, its images
    (``--limit``, None: all), batch size, device and evolution sample; the report's other
    options at their defaults (checked by it as usual). The source options are checked here
    (one of --run and --model, and only the options that go with it)."""
    argv = ["--run", args.run] if args.run else []
    argv += ["--model", args.model] if args.model else []
    for name in SHARED:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += ["--batch-size", str(args.batch_size), "--device", args.device,
             "--evolution-images", str(args.evolution_images)]
    out = report_parse_args(argv)
    out.limit = args.limit            # None (all the images) is the atlas's own default
    check_source(out)
    return out


def default_out(args) -> Path:
    """RUN/atlas, or MODEL's folder/atlas-<stem> (zfraw.report.options.atlas_folder: the report
    links there)."""
    return atlas_folder(args)
