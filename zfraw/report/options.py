"""The report's command line: its options, and the checks that refuse a bad one before any
work (ValueError, one line). The options are read into a subject and the sections' plain values
by :mod:`zfraw.report.subject` and :mod:`zfraw.report.pipeline`; no section sees them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..nets.inputs import PRESETS


def add_subject_options(p: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """The options that say what is shown: a run (and its checkpoint) or an imported model with
    its data and input convention. The report and the atlas take the same ones."""
    p.add_argument("--run", default=None, help="training run folder (config.json, checkpoints)")
    p.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="an ONNX net instead of a run (needs --data)")
    p.add_argument("--checkpoint", default=None, help=checkpoint_help)
    p.add_argument("--data", default=None, help="dataset spec (default: the run's)")
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help=f"--model's input convention: {', '.join(PRESETS)} (default: the one "
                   "the file records, written by zfraw's save_onnx)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="--model's class names, one per line (default: 'class k')")
    p.add_argument("--max-image-mib", type=float, default=None, metavar="MIB",
                   help="--model: refuse a graph whose activations for one image would take "
                   "more than MIB MiB (default 2048; 0: no limit)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m zfraw.report",
                                description=sys.modules[__package__].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_subject_options(p, "checkpoint to report on (default: the run's newest, last.npz)")
    p.add_argument("--out", default=None, help="report folder (default RUN/report, or "
                   "MODEL's folder/report-<stem>)")
    p.add_argument("--compare", default=None, help="another run (e.g. alexnet vs zf): its "
                   "first-layer filters and diagnostics beside this run's")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default: the run's, "
                   "else $ZFRAW_CACHE or ~/.cache/zfraw)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    # The defaults keep a 64x64 net's report to a couple of minutes on 2 CPU cores; raise them
    # (--limit, --maps, --occlusion-stats, --evolution-images) for a fuller picture.
    p.add_argument("--limit", type=int, default=200, help="validation images used (default 200)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top9-layers", nargs="*", default=None,
                   help="layers for top-9 (default: each conv layer's relu)")
    p.add_argument("--maps", type=int, default=9, help="maps per top-9 layer, drawn at random "
                   "among those that fire (default 9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choices of maps "
                   "and occlusions (default 0)")
    p.add_argument("--top9-positions", action="store_true", help="top-9 cells: the 9 strongest "
                   "(image, position) pairs instead of 9 distinct images")
    p.add_argument("--all-maps", default=None, metavar="LAYER", help="show every map of LAYER")
    p.add_argument("--rules-layer", default=None,
                   help="default relu5 (a model: the last conv's relu)")
    p.add_argument("--evolution-layers", nargs="*", default=None,
                   help="default: each conv layer's relu (runs only)")
    p.add_argument("--evolution-maps", type=int, default=6,
                   help="maps followed per layer, drawn at random once (default 6)")
    p.add_argument("--evolution-images", type=int, default=256,
                   help="training images searched at each epoch (default 256; the paper: all)")
    p.add_argument("--invariance-images", type=int, default=5,
                   help="Fig. 5 images: walking the validation images in order, one per class, "
                   "those the net classifies correctly with p(true class) >= "
                   "--invariance-min-prob first (default 5)")
    p.add_argument("--invariance-min-prob", type=float, default=0.5,
                   help="Fig. 5 images' least p(true class) (default 0.5)")
    p.add_argument("--occlusion-layer", default=None,
                   help="default relu5 (a model: the last conv's relu)")
    p.add_argument("--occlusion-size", type=int, default=None, help="default crop/4")
    p.add_argument("--occlusion-stride", type=int, default=None, help="default crop/8")
    p.add_argument("--occlusion-figures", type=int, default=2,
                   help="Fig. 7 figures: the first N validation images that the net classifies "
                   "correctly with p(true) >= --occlusion-min-prob and whose box covers at "
                   "most --occlusion-max-box of its view (default 2)")
    p.add_argument("--occlusion-min-prob", type=float, default=0.5,
                   help="the figures' least p(true class) (default 0.5)")
    p.add_argument("--occlusion-max-box", type=float, default=0.5,
                   help="the largest share of the net's view an object's box may cover, for "
                   "the figures and the statistic (default 0.5; 1: any box)")
    p.add_argument("--occlusion-stats", type=int, default=8,
                   help="images for the in-box drop statistic: the first N validation images "
                   "whose box covers at most --occlusion-max-box of the view (0: skip)")
    p.add_argument("--occlusion-stats-stride", type=int, default=None,
                   help="stride for the statistic (default: the figures' stride)")
    p.add_argument("--correspondence-classes", type=int, default=None,
                   help="classes whose parts are occluded (default: every class of a --parts "
                   "file; 2 of the synthetic set's)")
    p.add_argument("--correspondence-images", type=int, default=None,
                   help="images per class whose parts are occluded (default: every image of a "
                   "--parts file's class; 5 of the synthetic set's, as the paper)")
    p.add_argument("--parts", default=None, metavar="FILE",
                   help="part boxes for the correspondence section: JSON {image file: {part: "
                   "[x0, y0, x1, y1]}} (default: the synthetic set's own parts)")
    p.add_argument("--random-draws", type=int, default=5)
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS,
                   help="sections to leave out")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


# The sections that --skip can leave out, in page order (the pipeline draws them in this order).
SECTIONS = ("filters", "rules", "top9", "evolution", "invariance", "occlusion",
            "correspondence")
RUN_ONLY = ("checkpoint", "compare", "evolution_layers")
MODEL_ONLY = ("preprocess", "labels", "max_image_mib")


def atlas_folder(args) -> Path:
    """Where ``python -m zfraw.atlas`` writes the atlas of the subject of ``args`` by default:
    RUN/atlas, or MODEL's folder/atlas-<stem> (beside the report's report-<stem>). The report
    links to it when it is there."""
    if args.run:
        return Path(args.run) / "atlas"
    model = Path(args.model)
    return model.parent / f"atlas-{model.stem}"


def check_source(args) -> None:
    """Exactly one of --run and --model, and only the options that go with it."""
    if (args.run is None) == (args.model is None):
        raise ValueError("give --run DIR (a training run) or --model FILE.onnx, not both"
                         if args.run else "give --run DIR (a training run) or --model "
                         "FILE.onnx (an imported net)")
    wrong = MODEL_ONLY if args.run else RUN_ONLY
    for name in wrong:
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')} goes with "
                             f"{'--model' if args.run else '--run'}, not "
                             f"{'--run' if args.run else '--model'}")
    if args.model and not args.data:
        raise ValueError("--model needs --data SPEC (e.g. folder:MY_IMAGES): the images to "
                         "report on")
    mib = getattr(args, "max_image_mib", None)
    if mib is not None and not mib >= 0:
        raise ValueError(f"--max-image-mib must be >= 0 (0: no limit), got {mib}")


def check_args(args, net, layers: dict, all_maps_among=None) -> None:
    """Refuse, before any work, options that no section could honour (ValueError, one line).
    ``layers``: the subject's layers per section (given or by default), each checked under the
    option that sets it; ``all_maps_among``: the layers --all-maps must be one of (None: any)."""
    for name in ("limit", "batch_size", "maps", "evolution_maps", "evolution_images",
                 "invariance_images"):
        if getattr(args, name) is not None and getattr(args, name) < 1:   # limit None: all
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}")
    if args.correspondence_images is not None and args.correspondence_images < 2:
        raise ValueError(f"--correspondence-images must be at least 2 (pairs of images), got "
                         f"{args.correspondence_images}")
    if args.parts is not None and not Path(args.parts).is_file():
        raise ValueError(f"--parts {args.parts}: no such file")
    for name in ("occlusion_figures", "occlusion_stats", "correspondence_classes",
                 "random_draws"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name in ("occlusion_min_prob", "occlusion_max_box", "invariance_min_prob"):
        value = getattr(args, name)
        if not 0 <= value <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be in 0..1, got {value}")
    for name in ("occlusion_size", "occlusion_stride", "occlusion_stats_stride"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= net.input_shape[1]:
            raise ValueError(f"--{name.replace('_', '-')} must be in 1..{net.input_shape[1]} "
                             f"(the net's input side), got {value}")
    have = [layer.name for layer in net.layers]
    named = {"--top9-layers": layers["top9"], "--evolution-layers": layers.get("evolution", []),
             "--rules-layer": [layers["rules"]], "--occlusion-layer": [layers["occlusion"]],
             "--all-maps": [args.all_maps] if args.all_maps else []}
    for option, names in named.items():
        unknown = [n for n in names if n not in have]
        if unknown:
            raise ValueError(f"{option}: no layer {', '.join(unknown)} in this {net.arch}; its "
                             f"layers are {', '.join(have)}")
    if args.all_maps and all_maps_among is not None and args.all_maps not in all_maps_among:
        raise ValueError(f"--all-maps {args.all_maps} is not among --top9-layers")
    if args.top9_layers == []:
        raise ValueError("--top9-layers needs at least one layer name")
