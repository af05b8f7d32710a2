"""The checkpoint file: one ``.npz`` holding the weights, the optimizer's velocities, the mean
image, and a JSON ``meta`` record (config, epoch, step, learning rate, schedule state, running
sums of the epoch in progress). Where checkpoints live in a run folder is :mod:`zfraw.rundir`'s
business; this module only writes and reads one file.

Written atomically (:mod:`zfraw.atomic`: a temporary file in the same folder, fsync, then a
rename), so a run killed while saving leaves the previous checkpoint intact; the temporary file
is removed on every failure (a full disk, an interrupt). Reading checks the whole file (every
array is read, so the zip's CRC of each is verified) and turns any damage into a
:class:`CheckpointError` that names the file.

Keys: ``net/<layer>.<param>`` (and dropout counters, from ``net.state_dict()``),
``velocity/<layer>.<param>``, ``mean`` float32 (S, S, 3), ``meta`` (a JSON string).
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib

import numpy as np

from .atomic import atomic_open

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or of another format; the message names it."""


def save_checkpoint(path: str, net, opt, mean: np.ndarray, meta: dict) -> None:
    """Write ``net``, ``opt`` (an :class:`zfraw.optim.SGD`), ``mean`` and ``meta`` to ``path``."""
    opt_state = opt.state_dict()
    arrays = {f"net/{k}": v for k, v in net.state_dict().items()}
    arrays.update({f"velocity/{k}": v for k, v in opt_state["velocity"].items()})
    arrays["mean"] = np.asarray(mean, np.float32)
    record = dict(meta, format=FORMAT, opt={k: opt_state[k] for k in ("lr", "momentum", "weight_decay")})
    arrays["meta"] = np.array(json.dumps(record))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


# What a damaged .npz raises while it is opened or read: a cut or overwritten zip (BadZipFile,
# EOFError, OSError), a wrong CRC (BadZipFile), bad compressed data (zlib.error), a mangled
# array header or meta record (ValueError, KeyError, JSONDecodeError is a ValueError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint: {'net': state dict, 'opt': SGD state dict, 'mean': array, 'meta': dict}.
    Raises :class:`CheckpointError` naming ``path`` when it is missing, damaged or not ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            net = {k[4:]: z[k] for k in z.files if k.startswith("net/")}
            velocity = {k[9:]: z[k] for k in z.files if k.startswith("velocity/")}
            mean = z["mean"]
    except _DAMAGE as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "opt" not in meta:
        raise CheckpointError(f"{path}: not a zfraw checkpoint of format {FORMAT}")
    return {"net": net, "opt": dict(meta["opt"], velocity=velocity), "mean": mean, "meta": meta}
