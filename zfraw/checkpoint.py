"""Training checkpoints: one ``.npz`` holding the weights, the optimizer's velocities, the mean
image, and a JSON ``meta`` record (config, epoch, step, learning rate, schedule state, running
sums of the epoch in progress). Written atomically: a temporary file in the same folder, fsync,
then ``os.replace``, so a run killed while saving leaves the previous checkpoint intact.

Keys: ``net/<layer>.<param>`` (and dropout counters, from ``net.state_dict()``),
``velocity/<layer>.<param>``, ``mean`` float32 (S, S, 3), ``meta`` (a JSON string).
"""
from __future__ import annotations

import json
import os

import numpy as np

FORMAT = 1


def save_checkpoint(path: str, net, opt, mean: np.ndarray, meta: dict) -> None:
    """Write ``net``, ``opt`` (an :class:`zfraw.optim.SGD`), ``mean`` and ``meta`` to ``path``."""
    opt_state = opt.state_dict()
    arrays = {f"net/{k}": v for k, v in net.state_dict().items()}
    arrays.update({f"velocity/{k}": v for k, v in opt_state["velocity"].items()})
    arrays["mean"] = np.asarray(mean, np.float32)
    record = dict(meta, format=FORMAT, opt={k: opt_state[k] for k in ("lr", "momentum", "weight_decay")})
    arrays["meta"] = np.array(json.dumps(record))
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint: {'net': state dict, 'opt': SGD state dict, 'mean': array, 'meta': dict}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: checkpoint format {meta.get('format')} is not {FORMAT}")
        net = {k[4:]: z[k] for k in z.files if k.startswith("net/")}
        velocity = {k[9:]: z[k] for k in z.files if k.startswith("velocity/")}
        mean = z["mean"]
    return {"net": net, "opt": dict(meta["opt"], velocity=velocity), "mean": mean, "meta": meta}
