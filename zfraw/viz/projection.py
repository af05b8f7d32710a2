"""Projecting activations to pixel space (the paper's Sec. 2.1, Fig. 1).

To see what one activation responds to: run the image forward (recording the pooling switches),
keep that activation (or a whole feature map), zero every other activation of the layer, and
send the result down with ``net.project(layer, signal, rule)``. The rules differ only at ReLUs
('deconv' rectifies the signal, 'backprop' masks it by the forward activation, 'guided' does
both). Each image in a batch is projected with its own switches.

A "unit" is (map, y, x) in a layer's output; for fc layers (N, F) it is (unit, 0, 0).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_device, to_host


def forward_to(net, x, layer: str):
    """Eval-mode forward of x (N, C, H, W), host or device, up to ``layer``; returns its
    activation (on the net's device) and leaves the switches of this pass in the net for
    ``net.project``."""
    net.eval()
    return net.forward(to_device(x, net.device), until=layer)


def strongest_position(act, fmap) -> np.ndarray:
    """(N, 2) int (y, x) of the largest activation of map fmap[n] (an int or (N,) ints) in
    each image; zeros for fc layers. act: (N, C, H, W) or (N, F)."""
    a = to_host(act)
    n = a.shape[0]
    fmap = np.broadcast_to(np.asarray(fmap), (n,))
    if np.any(fmap < 0) or np.any(fmap >= a.shape[1]):
        raise ValueError(f"map index out of range 0..{a.shape[1] - 1}: {fmap.tolist()}")
    if a.ndim == 2:
        return np.zeros((n, 2), np.int64)
    maps = a[np.arange(n), fmap].reshape(n, -1)
    y, x = np.divmod(maps.argmax(axis=1), a.shape[3])
    return np.stack([y, x], axis=1)


def unit_signal(act, units, whole_map: bool = False):
    """Zero every activation of act (N, C, H, W) or (N, F) except, for each row n, the unit
    units[n] = (map, y, x) (or, with whole_map, all of map units[n][0]). Same array type as act."""
    xp = get_array_module(act)
    units = np.asarray(units, dtype=np.int64).reshape(-1, 3)
    if len(units) != act.shape[0]:
        raise ValueError(f"{act.shape[0]} activations but {len(units)} units")
    if np.any(units[:, 0] < 0) or np.any(units[:, 0] >= act.shape[1]):
        raise ValueError(f"map index out of range 0..{act.shape[1] - 1}: {units[:, 0].tolist()}")
    n = xp.arange(act.shape[0])
    c = xp.asarray(units[:, 0])
    signal = xp.zeros_like(act)
    if act.ndim == 2:
        signal[n, c] = act[n, c]
    elif whole_map:
        signal[n, c] = act[n, c]
    else:
        y, x = xp.asarray(units[:, 1]), xp.asarray(units[:, 2])
        if np.any(units[:, 1:] < 0) or np.any(units[:, 1] >= act.shape[2]) \
                or np.any(units[:, 2] >= act.shape[3]):
            raise ValueError(f"positions outside the {act.shape[2]}x{act.shape[3]} maps")
        signal[n, c, y, x] = act[n, c, y, x]
    return signal


def project_units(net, x, layer: str, units, rule: str = "deconv", whole_map: bool = False):
    """Project one unit per image: x (N, C, H, W) net inputs, units (N, 3) (map, y, x) in
    ``layer``'s output. Returns host float32 (N, C, H, W) pixel-space maps."""
    act = forward_to(net, x, layer)
    return to_host(net.project(layer, unit_signal(act, units, whole_map), rule))


def project_strongest(net, x, layer: str, fmap, rule: str = "deconv", where="max"):
    """Project feature map ``fmap`` (int, or (N,) ints) of ``layer`` for each image of x.

    where: 'max' (the map's strongest activation in that image), 'map' (the whole map), or a
    (y, x) position. Returns (projections host (N, C, H, W), units (N, 3) int, values (N,)
    the kept activation, or the map's sum for 'map')."""
    act = forward_to(net, x, layer)
    n = act.shape[0]
    fmap = np.broadcast_to(np.asarray(fmap, dtype=np.int64), (n,))
    mode = where if isinstance(where, str) else "position"
    if mode not in ("max", "map", "position"):
        raise ValueError(f"where must be 'max', 'map' or a (y, x) position, got {where!r}")
    if mode == "position":
        pos = np.broadcast_to(np.asarray(where, dtype=np.int64), (n, 2))
    else:
        pos = strongest_position(act, fmap)
    units = np.concatenate([fmap[:, None], pos], axis=1)
    signal = unit_signal(act, units, whole_map=(mode == "map"))
    values = to_host(signal).reshape(n, -1).sum(axis=1)
    return to_host(net.project(layer, signal, rule)), units, values
