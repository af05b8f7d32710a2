"""Reading a training run folder (written by zfraw.training): its configuration, metrics,
checkpoints as nets, and the validation images as an ImageSource.

Run folder: config.json, metrics.jsonl (one JSON record per epoch), mean.npy (S, S, 3),
last.npz and epoch-NNN.npz checkpoints (zfraw.checkpoint's format).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..nets import build, get_spec
from .source import ImageSource

EPOCH_FILE = re.compile(r"epoch-(\d+)\.npz$")


def read_config(run) -> dict:
    """The run's config.json as a dict; a clear error when the folder is not a run."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a training run folder (no config.json)")
    return json.loads(path.read_text())


def read_metrics(run) -> list:
    """The records of metrics.jsonl (empty when the file is missing or empty)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {n}: not JSON ({e})") from None
    return records


def epoch_checkpoints(run) -> list:
    """[(epoch, path)] of the run's epoch-NNN.npz files, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run).glob("epoch-*.npz")
             if (m := EPOCH_FILE.search(p.name))]
    return sorted(found)


def final_checkpoint(run) -> Path:
    """last.npz, else the newest epoch-NNN.npz; an error when the run has no checkpoint."""
    last = Path(run) / "last.npz"
    if last.is_file():
        return last
    epochs = epoch_checkpoints(run)
    if not epochs:
        raise FileNotFoundError(f"{run}: no checkpoint (last.npz or epoch-NNN.npz)")
    return epochs[-1][1]


def load_net(config: dict, path, device: str = "cpu"):
    """The net of a checkpoint, built from the run's config (arch, width; classes read from the
    checkpoint's last layer), in eval mode on ``device``. Returns (net, checkpoint dict)."""
    ckpt = load_checkpoint(str(path))
    last = get_spec(config["arch"])["layers"][-1][0]
    key = f"{last}.b"
    if key not in ckpt["net"]:
        raise ValueError(f"{path}: no {key!r} in the checkpoint; is it a {config['arch']} run?")
    net = build(config["arch"], int(ckpt["net"][key].shape[0]), seed=config.get("seed", 0),
                width=config.get("width", 1.0))
    net.load_state_dict(ckpt["net"])
    return net.to(device).eval(), ckpt


def snapshots(run, config: dict, device: str = "cpu"):
    """Yields (epoch, net) for every epoch-NNN.npz of the run, oldest first (one net alive at
    a time)."""
    for epoch, path in epoch_checkpoints(run):
        yield epoch, load_net(config, path, device)[0]


def load_source(config: dict, mean, crop: int, spec: str | None = None, limit: int = 300
                ) -> ImageSource:
    """Validation images of ``spec`` (default: the run's dataset) stored at the run's size.
    For the synthetic dataset only enough images are drawn: its validation image i depends on
    (seed, i, size) alone, so 'synthetic:5*limit' gives the first ``limit`` of any run's."""
    from ..data import load_spec
    from ..training import stored_size

    spec = spec or config.get("data", "synthetic")
    if spec.split(":")[0] == "synthetic":
        spec = f"synthetic:{5 * limit}"
    size = config.get("resize") or stored_size(crop)
    _, val = load_spec(spec, size, seed=config.get("seed", 0),
                       cache_dir=config.get("cache_dir"))
    n = min(limit, len(val))
    boxes = None if val.boxes is None else val.boxes[:n]
    return ImageSource(val.images[:n], mean, crop, val.labels[:n], boxes, val.names,
                       scale=config.get("input_scale", 1.0))
