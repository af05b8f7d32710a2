"""What a report is about: a training run (``--run``) or an imported ONNX net (``--model``),
both made into one :class:`Subject`: the net, its validation images, the layers each section
reads, what "the true class" means, the page's title and opening lines, and what only a run has
(its training metrics and checkpoints, another run to compare with). The sections read these
plain values; the options are read here once, and checked before any work."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..backend import to_device, to_host
from ..checkpoint import OUT_OF_SPACE, write_error
from ..data import default_cache_dir
from ..layers import Conv2d, Linear, ReLU
from ..nets.inputs import PRESETS, InputSpec
from ..rundir import RunDir
from ..viz.datasets import load_model_source, load_part_source, load_source, load_train_source
from ..viz.source import ImageSource
from .options import check_args
from .sections import TRUE, no_classifier, present


@dataclass
class Training:
    """What only a training run has: its metrics and epoch checkpoints (Fig. 4's snapshots)."""
    metrics: list               # metrics.jsonl's records, one per epoch
    epochs: list                # the epoch checkpoints, [(epoch, path)]
    snapshots: Callable         # () -> (epoch, net) for each of them, in order, then the final net
    images: Callable            # n -> ImageSource of n of the run's training images


@dataclass
class Subject:
    """A run or an imported net, as the report's opening and its sections read it."""
    title: str                  # the page's title
    about: str                  # its first line: where the net and the images come from
    input_note: str             # how the input convention was chosen
    net: object                 # the Net, in eval mode on the report's device
    source: ImageSource         # the validation images, read through the net's input convention
    # The layers each section reads: "top9", "evolution" (a run only), "invariance",
    # "correspondence": lists; "rules", "occlusion": one name; "filters": (the first conv, its
    # ReLU, the second conv or None).
    layers: dict
    label: str                  # the net in the filters' figure: "this run" or "this net"
    renorm: str                 # how its first-layer filters were kept in bounds
    load_parts: Callable        # (--parts FILE, log) -> ImageSource of the images it names,
    #                             with parts (log: where the lines on clipped boxes go)
    out: Path                   # the default report folder
    # n -> ImageSource of the first n validation images (as ``source``, which holds the first
    # --limit), for the occlusion statistic, which searches further; None: ``source`` only.
    validation: Callable | None = None
    # What the label-reading sections measure the probability of; None: the net has no
    # classifier (an imported headless graph), so those parts are left out.
    truth: str | None = TRUE
    notes: list = field(default_factory=list)  # [(heading, text)] after the input convention
    training: Training | None = None           # None: an imported net
    other: tuple | None = None                 # --compare: another run's (net, name, renorm)


def subject_of(args) -> Subject:
    """The subject that ``args`` (parsed options, checked by options.check_source) name."""
    return run_subject(args) if args.run else model_subject(args)


@contextmanager
def cache_errors(cache_dir):
    """Turn an OSError about the decoded-image cache into one line that names it: a folder
    that cannot be created or written is a ValueError (exit 2), a full disk stays an OSError
    (exit 1); any other OSError goes on as it is."""
    where = os.path.abspath(cache_dir or default_cache_dir())
    try:
        yield
    except OSError as e:
        name = None if e.filename is None else os.path.abspath(os.fspath(e.filename))
        if name is None or not (name == where or name.startswith(where + os.sep)):
            raise
        if e.errno in OUT_OF_SPACE:
            raise write_error(f"the decoded-image cache {where}", e, "free some space there, "
                              "or give --cache-dir a folder on another disk") from None
        raise ValueError(f"cannot write the decoded-image cache {where} ({e.strerror}); give "
                         "--cache-dir a folder that can be written") from None


def _with_cache_errors(cache_dir, load):
    """``load`` (a loader called later, by a section) with :func:`cache_errors` around it."""
    def guarded(*a, **k):
        with cache_errors(cache_dir):
            return load(*a, **k)
    return guarded


# -- a training run ------------------------------------------------------------------------------
def conv_relus(net):
    """'reluK' after each 'convK', in order (the conv layers' rectified outputs)."""
    return present(net, [f"relu{layer.name[4:]}" for layer in net.layers
                         if layer.name.startswith("conv")])


def run_layers(net, args) -> dict:
    """A run's layers, zfraw's names: those given, else each conv's ReLU for top-9 and
    evolution, relu5 for rules and occlusion, relu1 and relu7 for invariance (conv1 and fc7
    where the net has no such ReLUs), relu5 and relu7 for correspondence, conv1 for filters."""
    relus = conv_relus(net)
    return {"top9": relus if args.top9_layers is None else args.top9_layers,
            "evolution": args.evolution_layers or relus,
            "rules": args.rules_layer or "relu5", "occlusion": args.occlusion_layer or "relu5",
            "invariance": present(net, ["relu1", "relu7"]) or present(net, ["conv1", "fc7"]),
            "correspondence": (present(net, ["relu5", "relu7"])
                               or present(net, ["conv5", "fc7"])),
            "filters": ("conv1", "relu1", "conv2")}


def renorm_note(config) -> str:
    """How a run's filters were kept in bounds (the paper's Fig. 6 (a) vs (c))."""
    r = config.get("renorm_radius", 0.1)
    return f"filter renormalization to RMS {r:g}" if r else "no filter renormalization"


def run_subject(args) -> Subject:
    """A training run folder (``--run``) at ``--checkpoint`` (default its newest), with the
    validation images of its dataset (or ``--data``) read as training read them."""
    run = RunDir(args.run)
    config = run.read_config()
    if args.cache_dir:
        config = dict(config, cache_dir=args.cache_dir)
    net, ckpt, ckpt_path = run.load_net(args.checkpoint, args.device, config)
    layers = run_layers(net, args)
    # --all-maps is held to the top-9 layers only where they are given (a run's default, each
    # conv's ReLU, is not: a layer outside it shows nothing).
    check_args(args, net, layers, all_maps_among=args.top9_layers)
    crop = net.input_shape[1]
    mean, classes = ckpt["mean"], ckpt["meta"].get("classes")
    with cache_errors(config.get("cache_dir")):
        source = load_source(config, mean, crop, args.data, args.limit, classes=classes)
    data = args.data or config.get("data", "synthetic")
    scale = config.get("input_scale", 1.0)

    cache = config.get("cache_dir")

    def load_parts(path, log=None):
        return load_part_source(path, data, crop, source.images.shape[1], classes,
                                config.get("seed", 0), cache, log, mean=mean, scale=scale)

    return Subject(
        title=f"zfraw report: {run.path.name} ({config['arch']}, width "
              f"{config.get('width', 1)})",
        about=f"Run {run.path.resolve()}; checkpoint {ckpt_path.name}; "
              f"{len(source)} validation images of {args.data or config.get('data')}.",
        input_note="The run's own: its training set's mean image and its input scale "
                   "(zfraw.data's evaluation view, as in training's validation).",
        net=net, source=source, layers=layers, label="this run", renorm=renorm_note(config),
        load_parts=_with_cache_errors(cache, load_parts), out=run.report_path,
        validation=_with_cache_errors(cache, lambda n: load_source(
            config, mean, crop, args.data, n, classes=classes)),
        training=Training(
            metrics=run.read_metrics(), epochs=run.epoch_checkpoints(),
            snapshots=lambda: run.snapshots(args.device, config, final=True),
            images=_with_cache_errors(cache, lambda n: load_train_source(
                config, mean, crop, n, args.data, classes))),
        other=compared_run(args.compare, net, config, args.device) if args.compare else None)


def compared_run(path, net, config, device) -> tuple:
    """--compare: another run's (net, folder name, renorm note); refused unless its net takes
    the same inputs as this one's (size and scale: the filters section feeds both the same
    images)."""
    other_run = RunDir(path)
    oc = other_run.read_config()
    other_net = other_run.load_net(None, device, oc)[0]
    if other_net.input_shape != net.input_shape or \
            oc.get("input_scale", 1.0) != config.get("input_scale", 1.0):
        raise ValueError(f"--compare: {path} takes {other_net.input_shape} inputs "
                         f"scaled by {oc.get('input_scale', 1.0)}, this run "
                         f"{net.input_shape} by {config.get('input_scale', 1.0)}; compare "
                         "runs with the same input size and scale")
    return other_net, other_run.path.name, renorm_note(oc)


# -- an imported net -----------------------------------------------------------------------------
def imported_layers(net) -> dict:
    """Layer choices by type for a net whose names are not zfraw's (an imported graph): the
    ReLU after each conv (the conv itself where none follows it before the next conv or fc),
    the last of them for rules and occlusion, the ReLU after the last hidden fc for invariance
    and correspondence, and the first conv, its ReLU and the second conv for the filters'
    diagnostics."""
    layers = net.layers

    def rectified(i):
        for layer in layers[i + 1:]:
            if isinstance(layer, ReLU):
                return layer.name
            if isinstance(layer, (Conv2d, Linear)):
                break
        return layers[i].name

    convs = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2d)]
    fcs = [i for i, layer in enumerate(layers) if isinstance(layer, Linear)]
    if not convs:
        raise ValueError(f"{net.arch} has no convolution; the report is for conv nets")
    relus = [rectified(i) for i in convs]
    fc = rectified(fcs[-2]) if len(fcs) >= 2 else None
    return {"top9": relus, "rules": relus[-1], "occlusion": relus[-1],
            "invariance": list(dict.fromkeys([relus[0], fc or relus[-1]])),
            "correspondence": [relus[-1]] + ([fc] if fc else []),
            "filters": (layers[convs[0]].name, relus[0],
                        layers[convs[1]].name if len(convs) > 1 else None)}


def load_model(path, device: str = "cpu", max_image_mib=None):
    """The Net of an ONNX file, on ``device``; ValueError (one line) for anything wrong.
    ``max_image_mib``: the most MiB of activations one image may need (None: the importer's
    default, 0: no limit)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--model {path}: no such file")
    try:
        from ..nets.onnx import load_onnx
    except ImportError as e:
        raise ValueError(str(e)) from None
    try:
        if max_image_mib is None:
            net = load_onnx(path)
        else:
            limit = None if max_image_mib == 0 else max(1, int(max_image_mib * (1 << 20)))
            net = load_onnx(path, max_image_bytes=limit)
    except ImportError as e:  # the onnx package itself is missing
        raise ValueError(str(e)) from None
    c, h, w = net.input_shape
    if c != 3 or h != w:
        raise ValueError(f"{path}: input (N, {c}, {h}, {w}); the report reads RGB images into "
                         "square 3-channel inputs")
    return net.to(device).eval()


def read_labels(path, classes: int) -> list:
    """Class names, one per line (blank lines at the end ignored), exactly ``classes`` of them."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--labels {path}: cannot read it ({e.__class__.__name__}: {e})") \
            from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if len(names) != classes:
        raise ValueError(f"--labels {path} has {len(names)} names, the net has {classes} "
                         "outputs; give one name per output, one per line")
    return names


def model_input_spec(net, preprocess, model, data):
    """(InputSpec or None, how it was chosen) for ``--preprocess`` (None: the one the file
    records); None means 'zfraw' without a recorded mean (the dataset's training mean image is
    used). ``model`` and ``data``: the options' values, for the messages."""
    recorded = getattr(net, "input_spec", None)
    name = preprocess
    if name is None:
        if recorded is None:
            raise ValueError(f"{model} does not record its input convention; give "
                             f"--preprocess {'|'.join(PRESETS)} (the zoo's Caffe nets: caffe)")
        return recorded, "Recorded in the model file (metadata_props 'zfraw.input_spec')."
    if name not in PRESETS:
        raise ValueError(f"--preprocess {name!r}: choose one of {', '.join(PRESETS)}")
    if name == "zfraw":
        if recorded is not None:
            return recorded, "--preprocess zfraw: the convention recorded in the model file."
        return None, ("--preprocess zfraw, and the file records no mean: the per-pixel mean "
                      f"image of {data}'s training images, scale 1.")
    return InputSpec.preset(name, net.input_shape[1]), f"--preprocess {name}."


def predict(net, source, batch_size: int) -> np.ndarray:
    """The net's top-1 class on each unmodified image of source."""
    out = []
    for _, x in source.batches(batch_size, desc="top-1 predictions"):
        out.append(to_host(net.forward(to_device(x, net.device))).argmax(axis=1))
    return np.concatenate(out)


def model_subject(args) -> Subject:
    """An imported ONNX net (``--model``) on the validation images of ``--data``: its layers
    chosen by type unless given; where the images' classes are not the net's, "the true class"
    is the net's top-1 prediction on the unmodified image. No training, so no training or
    evolution sections. A net without a classifier (a headless graph) has no classes and no
    predictions: truth None, the images keep their dataset's classes."""
    model = Path(args.model)
    net = load_model(model, args.device, getattr(args, "max_image_mib", None))
    headless = net.num_classes is None
    if headless and args.labels:
        raise ValueError(f"--labels {args.labels}: {model} has no classifier (its graph ends in "
                         f"{'x'.join(map(str, net.shapes[-1]))} features), so it has no classes "
                         "to name; leave --labels out")
    names = read_labels(args.labels, net.num_classes) if args.labels else None
    spec, how = model_input_spec(net, args.preprocess, args.model, args.data)
    chosen = imported_layers(net)
    given = {"rules": args.rules_layer, "occlusion": args.occlusion_layer,
             "top9": args.top9_layers}
    layers = dict(chosen, rules=args.rules_layer or chosen["rules"],
                  occlusion=args.occlusion_layer or chosen["occlusion"],
                  top9=chosen["top9"] if args.top9_layers is None else args.top9_layers)
    check_args(args, net, layers, all_maps_among=layers["top9"])
    crop = net.input_shape[1]
    with cache_errors(args.cache_dir):
        source, matched = load_model_source(args.data, spec, crop, args.limit, names,
                                            cache_dir=args.cache_dir)
    if headless:
        truth = None
        labels_note = (no_classifier(net, "the net's predictions are") + " The images keep "
                       "their dataset's own classes (they pick invariance's example images and "
                       "group correspondence's); occlusion and invariance each say what they "
                       "leave out.")
    elif matched:
        truth = TRUE
        labels_note = ("The images' dataset classes are all among the model's:"
                       " 'the true class' is the image's own.")
    else:
        class_names = names or [f"class {k}" for k in range(net.num_classes)]
        source = source.relabeled(predict(net, source, args.batch_size), class_names)
        truth = "the class the net predicts on the unmodified image"
        labels_note = ("The images' dataset classes are not the model's"
                       + ("" if args.labels else " (without --labels the model's are unnamed)")
                       + ": where a section needs the true class (occlusion's p(true class), "
                       "invariance's probability curves, the classes of correspondence), it "
                       "uses the net's top-1 prediction on the unmodified image instead.")
    info = net.onnx_info
    picked = [f"top-9: {', '.join(layers['top9'])}", f"rules: {layers['rules']}",
              f"occlusion: {layers['occlusion']}",
              f"invariance: {', '.join(layers['invariance'])}",
              f"correspondence: {', '.join(layers['correspondence'])}",
              f"filters: {', '.join(n for n in layers['filters'] if n)}"]
    by_type = [k for k, v in given.items() if not v]
    layers_note = ("The graph's layer names are its own, so the sections' layers are chosen by "
                   "type (the ReLU after each conv; the last conv's ReLU for rules and occlusion; "
                   "the first conv's and the last hidden fc's ReLU for invariance; the last "
                   "conv's and the last hidden fc's for correspondence)"
                   + (f", except {', '.join(k for k in given if k not in by_type)} as given" if
                      len(by_type) < len(given) else "")
                   + ": " + "; ".join(picked) + ". The training and feature-evolution sections "
                   "need a training run and are left out.")

    def load_parts(path, log=None):
        return load_part_source(path, args.data, crop, source.images.shape[1],
                                cache_dir=args.cache_dir, log=log, mean=None, spec=source.spec)

    def validation(n):
        more = load_model_source(args.data, spec, crop, n, names, cache_dir=args.cache_dir)[0]
        if truth is not None and truth != TRUE:  # the net's top-1 stands for the true class
            more = more.relabeled(predict(net, more, args.batch_size), source.names)
        return more

    return Subject(
        title=f"zfraw report: {model.name} (imported ONNX net)",
        about=f"Model {model.resolve()}: graph {info['graph_name'] or '(unnamed)'}, opset "
              f"{info['opset']}, producer {info['producer'] or '(none)'}; input "
              f"{info['input_name']!r} (N, {', '.join(map(str, net.input_shape))}), "
              + (f"{net.num_classes} classes" if not headless else "no classifier (output "
                 f"(N, {', '.join(map(str, net.shapes[-1]))}))")
              + (" (the graph ends in a Softmax; the report reads its logits)"
                 if net.softmax_output else "")
              + f". {len(source)} validation images of {args.data}.",
        input_note=how, net=net, source=source, layers=layers, label="this net",
        renorm="imported net", load_parts=_with_cache_errors(args.cache_dir, load_parts),
        out=model.parent / f"report-{model.stem}",
        validation=_with_cache_errors(args.cache_dir, validation),
        truth=truth,
        notes=[("Classes and labels", labels_note if headless else
                f"Class names: {'from ' + args.labels if args.labels else 'class k (no --labels)'}"
                f". {labels_note}"),
               ("Layers", layers_note)])
