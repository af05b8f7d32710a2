"""Image sources read from datasets: the images a visualization looks at, as an
:class:`~zfraw.viz.source.ImageSource`: a run's validation images (:func:`load_source`) and
training images (:func:`load_train_source`), a dataset's images for an imported net
(:func:`load_model_source`), and the images a ``--parts`` file names (:func:`load_part_source`).

The run folder itself (config, metrics, checkpoints, nets) is read through :mod:`zfraw.rundir`.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import DataError, center_offset, load_spec, mean_image, stored_size
from ..data.images import map_box, resize_crop_geometry
from ..data.spec import parse_spec
from ..data.synthetic import validation_parts
from ..nets.inputs import InputSpec
from .source import ImageSource


def load_source(config: dict, mean, crop: int, spec: str | None = None,
                limit: int | None = 300, classes: list | None = None) -> ImageSource:
    """The first ``limit`` validation images of ``spec`` (default: the run's dataset; ``limit``
    None: all of them), stored at the run's size. ``classes``: the class ids the net was
    trained on (a checkpoint's ``meta['classes']``); a dataset with other classes is refused,
    since its labels would index the wrong outputs. For the synthetic dataset only enough images are drawn: its
    validation image i depends on (seed, i, size) alone, so 'synthetic:5*limit' gives the first
    ``limit`` of any run's."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 image, got {limit}")
    given = spec is not None
    spec = _data_spec(spec or config.get("data", "synthetic"), limit)
    size = stored_size(crop, config.get("resize"))
    _, val = load_spec(spec, size, seed=config.get("seed", 0),
                       cache_dir=config.get("cache_dir"))
    if classes is not None and list(val.classes) != list(classes):
        what = (f"--data {spec}" if given else
                f"the run's dataset, {config.get('data', 'synthetic')},")
        fix = ("give a dataset with the run's classes" if given else
               "its images changed on disk since the training")
        raise DataError(f"{what} has {val.num_classes} classes "
                        f"({', '.join(map(str, val.classes[:3]))}, ...), the run's net was trained "
                        f"on {len(classes)} ({', '.join(map(str, classes[:3]))}, ...); {fix}")
    n = len(val) if limit is None else min(limit, len(val))
    boxes = None if val.boxes is None else val.boxes[:n]
    return ImageSource(val.images[:n], mean, crop, val.labels[:n], boxes, val.names,
                       scale=config.get("input_scale", 1.0),
                       parts=synthetic_parts(spec, n, config.get("seed", 0), size),
                       files=val.files[:n])


def synthetic_parts(spec: str, n: int, seed: int, size: int):
    """The built-in part boxes of the first n validation images of a synthetic spec (None for
    any other dataset)."""
    return validation_parts(n, seed, size) if spec.split(":")[0] == "synthetic" else None


def load_train_source(config: dict, mean, crop: int, n: int, spec: str | None = None,
                      classes: list | None = None) -> ImageSource:
    """``n`` of the run's *training* images (the paper's Fig. 4 takes the strongest activation
    over the training set), read through the run's evaluation view (centre crop, mean, scale:
    no random crop or flip). A synthetic set's first n (its images are drawn independently, so
    any n are a random sample); for any other dataset a random sample (seeded by the run's
    seed), since training files are listed class by class."""
    if n < 1:
        raise ValueError(f"--evolution-images must be at least 1, got {n}")
    spec = spec or config.get("data", "synthetic")
    size = stored_size(crop, config.get("resize"))
    seed = config.get("seed", 0)
    if spec.split(":")[0] == "synthetic":
        train, _ = load_spec(f"synthetic:{n}", size, seed=seed)
        idx = np.arange(min(n, len(train)))
    else:
        train, _ = load_spec(spec, size, seed=seed, cache_dir=config.get("cache_dir"))
        if classes is not None and list(train.classes) != list(classes):
            raise DataError(f"--data {spec}: its classes are not the run's")
        idx = np.sort(np.random.default_rng(seed).choice(len(train), min(n, len(train)),
                                                         replace=False))
    return ImageSource(np.asarray(train.images[idx]), mean, crop, train.labels[idx],
                       names=train.names, scale=config.get("input_scale", 1.0))


def read_parts_file(path) -> dict:
    """A ``--parts`` file: JSON {image file: {part name: [x0, y0, x1, y1]}}, image files as the
    dataset lists them (relative to its folder, e.g. ``val/images/val_12.JPEG``), boxes
    half-open in the original image's pixels (as the dataset's own box files). An entry
    ``"object"`` is the region for the random occlusions (default: the dataset's box, else the
    whole image). ValueError (one line) for anything malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--parts {path}: cannot read it ({e.__class__.__name__}: {e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"--parts {path}: expected a JSON object {{image file: {{part: box}}}}")
    for file, parts in data.items():
        if not isinstance(parts, dict) or not parts:
            raise ValueError(f"--parts {path}: {file!r} needs an object {{part name: box}}")
        for name, box in parts.items():
            ok = (isinstance(box, list) and len(box) == 4
                  and all(isinstance(v, (int, float)) for v in box)
                  and box[2] > box[0] and box[3] > box[1])
            if not ok:
                raise ValueError(f"--parts {path}: {file!r} part {name!r}: expected "
                                 f"[x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {box!r}")
    return data


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _named(items, first: int = 3) -> str:
    """'a, b, c and 2 more' for a list of descriptions."""
    shown = ", ".join(items[:first])
    return shown + (f" and {len(items) - first} more" if len(items) > first else "")


def _box_text(file, name, box) -> str:
    return f"{file} {name} [{', '.join(f'{v:g}' for v in box)}]"


def _view_of(box, w: int, h: int, size: int, crop: int):
    """Where a box (x0, y0, x1, y1) in original pixels lands in the net's view (the centre
    crop of the image stored at ``size``), before any clipping: (x0, y0, x1, y1) in crop
    pixels, rounded outward as :func:`map_box` rounds."""
    _, _, sx, sy, ox, oy = resize_crop_geometry(w, h, size)
    o = center_offset(size, crop)
    x0, y0, x1, y1 = box
    return (np.floor(x0 * sx - ox) - o, np.floor(y0 * sy - oy) - o,
            np.ceil(x1 * sx - ox) - o, np.ceil(y1 * sy - oy) - o)


def check_part_boxes(path, boxes, crop: int, size: int, log=_stderr) -> None:
    """Check the boxes of a ``--parts`` file against their images: ``boxes`` is
    [(file, part name, box (x0, y0, x1, y1) in original pixels, (w, h) of the image)]. A box
    wholly outside its image is refused (ValueError naming them); a box that reaches outside
    its image, or outside the net's view of it (the centre ``crop`` of the image stored at
    ``size``), is clipped, and a part box wholly outside that view is left out: each of these
    is said in one line with ``log`` (a count and the first boxes named)."""
    outside, clipped, cut, dropped = [], [], [], []
    for file, name, box, (w, h) in boxes:
        x0, y0, x1, y1 = box
        text = _box_text(file, name, box)
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            outside.append(f"{text} (image {w}x{h})")
            continue
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            clipped.append(f"{text} (image {w}x{h})")
        if name == "object":       # the random occlusions' region; clipped to the view
            continue
        vx0, vy0, vx1, vy1 = _view_of(box, w, h, size, crop)
        if vx1 <= 0 or vy1 <= 0 or vx0 >= crop or vy0 >= crop:
            dropped.append(text)
        elif vx0 < 0 or vy0 < 0 or vx1 > crop or vy1 > crop:
            cut.append(text)
    if outside:
        raise ValueError(f"--parts {path}: {len(outside)} box(es) lie wholly outside their "
                         f"image: {_named(outside)}; boxes are [x0, y0, x1, y1] in the "
                         "original image's pixels")
    view = f"the net's view ({crop}x{crop} centre crop of the image stored at {size}x{size})"
    if clipped:
        log(f"--parts {path}: {len(clipped)} box(es) reach outside their image, clipped to it: "
            f"{_named(clipped)}")
    if cut:
        log(f"--parts {path}: {len(cut)} part box(es) reach outside {view}, clipped to it: "
            f"{_named(cut)}")
    if dropped:
        log(f"--parts {path}: {len(dropped)} part box(es) lie outside {view}, left out: "
            f"{_named(dropped)}")


def load_part_source(path, spec: str, crop: int, size: int, classes=None, seed: int = 0,
                     cache_dir=None, log=None, **source_args) -> ImageSource:
    """The images a ``--parts`` file names (see :func:`read_parts_file`), found among the
    validation then training files of dataset ``spec`` stored at ``size``, with their part
    boxes (and "object" regions, as boxes) mapped into the stored images as the dataset maps
    its boxes. Boxes outside their image or the net's view: :func:`check_part_boxes` (its
    lines go to ``log``, default stderr). source_args: ImageSource's mean and scale or spec."""
    data = read_parts_file(path)
    if spec.split(":")[0] == "synthetic":
        raise ValueError("--parts: the synthetic set has its own parts; give --parts with a "
                         "dataset of image files")
    root = parse_spec(spec)[1]
    train, val = load_spec(spec, size, seed=seed, cache_dir=cache_dir)
    if classes is not None and list(val.classes) != list(classes):
        raise DataError(f"--data {spec}: its classes are not the run's")
    where = {}
    for ds in (train, val):                  # val second: its entries win
        for i, f in enumerate(ds.files):
            where[f.replace(os.sep, "/")] = (ds, i)
    images, labels, boxes, parts, checked = [], [], [], [], []
    for file, named in data.items():
        if file.replace(os.sep, "/") not in where:
            raise ValueError(f"--parts {path}: no image {file!r} in {spec} (give paths as "
                             f"the dataset lists them, e.g. {val.files[0] if val.files else ''})")
        ds, i = where[file.replace(os.sep, "/")]
        with Image.open(os.path.join(root, file)) as im:
            w, h = im.size
        checked += [(file, name, b, (w, h)) for name, b in named.items()]
        mapped = {name: tuple(int(v) for v in map_box(b, w, h, size))
                  for name, b in named.items() if name != "object"}
        if "object" in named:
            box = map_box(named["object"], w, h, size)
        elif ds.boxes is not None and ds.boxes[i, 0] >= 0:
            box = ds.boxes[i]
        else:
            box = np.array([0, 0, size, size])
        images.append(np.asarray(ds.images[i]))
        labels.append(int(ds.labels[i]))
        boxes.append(box)
        parts.append(mapped)
    check_part_boxes(path, checked, crop, size, log or _stderr)
    return ImageSource(np.stack(images), crop=crop, labels=np.array(labels),
                       boxes=np.stack(boxes), names=val.names, parts=parts, files=list(data),
                       **source_args)


def _data_spec(spec: str, limit: int | None) -> str:
    """Only enough synthetic images: validation image i depends on (seed, i, size) alone
    (``limit`` None: the spec's own, all of its validation images)."""
    return f"synthetic:{5 * limit}" if limit is not None and spec.split(":")[0] == "synthetic" \
        else spec


def model_labels(val, class_names) -> np.ndarray | None:
    """The dataset's labels as indices of the model's classes, where every class of the
    dataset (its id or its name) is one of ``class_names`` (a whole line of the labels file or
    its first word, e.g. a WordNet id); None where any is not (the labels mean nothing to the
    model)."""
    lookup = {}
    for k, line in enumerate(class_names):
        words = line.split()
        lookup.setdefault(line.strip(), k)
        if words:
            lookup.setdefault(words[0], k)
    for keys in (val.classes, val.names):
        idx = [lookup.get(str(c).strip()) for c in keys]
        if all(i is not None for i in idx):
            return np.asarray(idx, np.int64)[np.asarray(val.labels)]
    return None


def load_model_source(spec: str, input_spec: InputSpec | None, crop: int,
                      limit: int | None = 300, class_names: list | None = None, cache_dir=None):
    """The first ``limit`` (None: all) validation images of dataset ``spec`` for an imported
    net of input side ``crop``, stored at the input spec's size and read through it.
    ``input_spec`` None: zfraw's convention with no recorded mean, i.e. the per-pixel mean
    image of the dataset's training images at the model zoo's stored size
    (``stored_size(crop, convention='zoo')``, scale 1).

    ``class_names``: the model's classes from a labels file (None: unnamed). Returns
    (source, matched): with ``matched`` the source's labels are the model's class indices of
    the images' dataset classes (:func:`model_labels`); otherwise they are the dataset's own
    (for its class list only) and the caller is expected to replace them by predictions.
    ``cache_dir``: the decoded-image cache (None: the default)."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 image, got {limit}")
    size = input_spec.size if input_spec is not None else stored_size(crop, convention="zoo")
    train, val = load_spec(_data_spec(spec, limit), size, cache_dir=cache_dir)
    if input_spec is None:
        input_spec = InputSpec.zfraw(mean_image(train.images), crop)
    n = len(val) if limit is None else min(limit, len(val))
    labels = model_labels(val, class_names) if class_names is not None else None
    matched = labels is not None
    labels, names = (labels[:n], class_names) if matched else (val.labels[:n], val.names)
    boxes = None if val.boxes is None else val.boxes[:n]
    return ImageSource(val.images[:n], None, crop, labels, boxes, names, spec=input_spec,
                       parts=synthetic_parts(spec, n, 0, size), files=val.files[:n]), matched
