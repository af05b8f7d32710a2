"""The validation images of a training run or of a dataset for an imported net, as an
:class:`ImageSource` for the visualizations.

The run folder itself (config, metrics, checkpoints, nets) is read through :mod:`zfraw.rundir`.
"""
from __future__ import annotations

import numpy as np

from ..data import DataError, load_spec, mean_image
from ..nets.inputs import InputSpec, preset_size
from ..rundir import stored_size
from .source import ImageSource


def load_source(config: dict, mean, crop: int, spec: str | None = None, limit: int = 300,
                classes: list | None = None) -> ImageSource:
    """The first ``limit`` validation images of ``spec`` (default: the run's dataset), stored at
    the run's size. ``classes``: the class ids the net was trained on (a checkpoint's
    ``meta['classes']``); a dataset with other classes is refused, since its labels would
    index the wrong outputs. For the synthetic dataset only enough images are drawn: its
    validation image i depends on (seed, i, size) alone, so 'synthetic:5*limit' gives the first
    ``limit`` of any run's."""
    if limit < 1:
        raise ValueError(f"--limit must be at least 1 image, got {limit}")
    spec = _data_spec(spec or config.get("data", "synthetic"), limit)
    size = config.get("resize") or stored_size(crop)
    _, val = load_spec(spec, size, seed=config.get("seed", 0),
                       cache_dir=config.get("cache_dir"))
    if classes is not None and list(val.classes) != list(classes):
        raise DataError(f"--data {spec} has {val.num_classes} classes "
                        f"({', '.join(map(str, val.classes[:3]))}, ...), the run's net was trained "
                        f"on {len(classes)} ({', '.join(map(str, classes[:3]))}, ...); give "
                        "a dataset with the run's classes")
    n = min(limit, len(val))
    boxes = None if val.boxes is None else val.boxes[:n]
    return ImageSource(val.images[:n], mean, crop, val.labels[:n], boxes, val.names,
                       scale=config.get("input_scale", 1.0))


def _data_spec(spec: str, limit: int) -> str:
    """Only enough synthetic images: validation image i depends on (seed, i, size) alone."""
    return f"synthetic:{5 * limit}" if spec.split(":")[0] == "synthetic" else spec


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


def load_model_source(spec: str, input_spec: InputSpec | None, crop: int, limit: int = 300,
                      class_names: list | None = None):
    """The first ``limit`` validation images of dataset ``spec`` for an imported net of input
    side ``crop``, stored at the input spec's size and read through it. ``input_spec`` None:
    zfraw's convention with no recorded mean, i.e. the per-pixel mean image of the dataset's
    training images at :func:`preset_size` (scale 1).

    ``class_names``: the model's classes from a labels file (None: unnamed). Returns
    (source, matched): with ``matched`` the source's labels are the model's class indices of
    the images' dataset classes (:func:`model_labels`); otherwise they are the dataset's own
    (for its class list only) and the caller is expected to replace them by predictions."""
    if limit < 1:
        raise ValueError(f"--limit must be at least 1 image, got {limit}")
    size = input_spec.size if input_spec is not None else preset_size(crop)
    train, val = load_spec(_data_spec(spec, limit), size)
    if input_spec is None:
        input_spec = InputSpec.zfraw(mean_image(train.images), crop)
    n = min(limit, len(val))
    labels = model_labels(val, class_names) if class_names is not None else None
    matched = labels is not None
    labels, names = (labels[:n], class_names) if matched else (val.labels[:n], val.names)
    boxes = None if val.boxes is None else val.boxes[:n]
    return ImageSource(val.images[:n], None, crop, labels, boxes, names, spec=input_spec), matched
