"""The paper's filter renormalization (Sec. 3): every conv filter whose RMS value exceeds a fixed
radius is rescaled to that radius, which stops a few first-layer filters from dominating."""
from __future__ import annotations

from ..backend import get_array_module
from ..layers import Conv2d


def renormalize_filters(net, radius: float = 0.1) -> None:
    """Rescale in place each conv filter W[f] (in, kh, kw) with RMS > radius to RMS = radius.
    Runs every step, so it reads nothing back to the host."""
    for layer in net.layers:
        if not isinstance(layer, Conv2d):
            continue
        W = layer.params["W"]
        xp = get_array_module(W)
        rms = xp.sqrt((W.reshape(W.shape[0], -1) ** 2).mean(axis=1))  # (out,)
        over = rms > radius
        W *= xp.where(over, radius / xp.maximum(rms, 1e-30), 1.0).astype(W.dtype)[:, None, None, None]
