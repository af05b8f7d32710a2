"""The validation images of a training run, as an :class:`ImageSource` for the visualizations.

The run folder itself (config, metrics, checkpoints, nets) is read through :mod:`zfraw.rundir`.
"""
from __future__ import annotations

from ..data import DataError, load_spec
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
    spec = spec or config.get("data", "synthetic")
    if spec.split(":")[0] == "synthetic":
        spec = f"synthetic:{5 * limit}"
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
