"""The paper's Fig. 2: for feature maps of a layer, the 9 strongest activations over a dataset,
each projected to pixel space and cropped to the activation's receptive field, shown beside the
matching image patches.

One streaming pass (``collect_topk``) keeps the 9 best (value, image, position) per map for
several layers at once; a second, small pass (``project_topk``) re-runs only those images to
record their switches and projects each activation on its own.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import to_device
from .images import (DISPLAY_PERCENTILE, crop_padded, grid, hstack, scale_to_uint8,
                     symmetric_uint8, tile_zoom, upscale)
from .projection import project_units
from .topk import StreamingTopK, TopK


class Projected(NamedTuple):
    """One kept activation: its value, dataset image index, receptive-field box (y0, x0, y1,
    x1) in net-input pixels (unclipped), projection crop (C, s, s) and image patch (C, s, s)
    in 0..255, both cut out with that box."""
    value: float
    image: int
    box: tuple
    proj: np.ndarray
    patch: np.ndarray


def collect_topk(net, source, layers, k: int = 9, batch_size: int = 64, limit=None,
                 desc: str = "top-k pass", distinct: bool = False) -> dict:
    """{layer: TopK} over the first ``limit`` images of source (an ImageSource), one forward
    per batch up to the deepest layer asked for. distinct: the k strongest *images* per map
    (each at its strongest position), as the paper's Fig. 2; otherwise the k strongest
    (image, position) pairs."""
    layers = list(layers)
    deepest = max(layers, key=net.index)
    keep = {name: StreamingTopK(k, per_image=distinct) for name in layers}
    net.eval()
    for start, x in source.batches(batch_size, limit, desc):
        _, acts = net.forward(to_device(x, net.device), until=deepest, capture=layers)
        for name in layers:
            keep[name].update(acts[name], start)
    return {name: tk.result() for name, tk in keep.items()}


def crop_box(net, layer: str, y: int, x: int):
    """Receptive-field box (y0, x0, y1, x1) of unit (y, x) of ``layer``; the whole input for
    fc layers (whose units see every pixel)."""
    if len(net.output_shape(layer)) == 1:
        _, h, w = net.input_shape
        return 0, 0, h, w
    return net.rf_box(layer, int(y), int(x))


def project_topk(net, source, layer: str, topk: TopK, maps, rule: str = "deconv",
                 batch_size: int = 64):
    """Project the kept activations of ``maps`` and crop them and their image patches to the
    receptive field. Returns {map: list of :class:`Projected` (value, image index, box,
    projection crop (C, s, s), patch crop (C, s, s) in 0..255)}, strongest first; empty slots
    are left out. Crops may reach outside the image: the projection is padded with 0, the
    patch with grey 128."""
    entries = [(m, r) for m in maps for r in range(topk.values.shape[1])
               if topk.image[m, r] >= 0]
    out = {m: [] for m in maps}
    for i in range(0, len(entries), batch_size):
        chunk = entries[i:i + batch_size]
        img = np.array([topk.image[m, r] for m, r in chunk])
        units = np.array([(m, topk.y[m, r], topk.x[m, r]) for m, r in chunk])
        proj = project_units(net, source.inputs(img), layer, units, rule)
        pixels = source.pixels(img)
        for (m, r), p, px, (_, y, x) in zip(chunk, proj, pixels, units):
            box = crop_box(net, layer, y, x)
            out[m].append(Projected(float(topk.values[m, r]), int(topk.image[m, r]), box,
                                    crop_padded(p, box, 0.0), crop_padded(px, box, 128.0)))
    return out


def map_blocks(items, k: int = 9):
    """One map's 3x3 grid of projections (each normalised on its own, zero = grey) and the
    3x3 grid of the image patches under them (black gaps, white where fewer than k).
    -> (projections, patches), (H, W, 3) uint8 each."""
    if not items:
        raise ValueError("map_blocks: no activations to show")
    side = items[0].proj.shape[1]
    z = tile_zoom(side)
    blank = np.full((side * z, side * z, 3), 255, np.uint8)
    proj = [upscale(symmetric_uint8(it.proj, DISPLAY_PERCENTILE), z) for it in items]
    patch = [upscale(scale_to_uint8(it.patch, 0, 255), z) for it in items]
    ncols = int(np.ceil(np.sqrt(k)))
    proj += [blank] * (k - len(proj))
    patch += [blank] * (k - len(patch))
    return grid(proj, ncols, pad=1, bg=0), grid(patch, ncols, pad=1, bg=0)


def layer_figure(blocks: list, per_row: int | None = None, gap: int = 8,
                 max_width: int | None = None):
    """The paper's Fig. 2 layout for one layer: the maps' 3x3 projection grids on the left,
    the 3x3 patch grids on the right at the same places (blocks: [(projections, patches)] from
    :func:`map_blocks`, row-major), ``per_row`` maps per row (default: a square, with fewer per
    row where it would be wider than ``max_width`` pixels; tiles keep their size).
    -> (H, W, 3) uint8."""
    if per_row is None:
        per_row = int(np.ceil(np.sqrt(len(blocks))))
        block = blocks[0][0].shape[1]
        while max_width and per_row > 1 and 2 * (per_row * (block + gap) + gap) + 5 * gap \
                > max_width:
            per_row -= 1
    left = grid([b[0] for b in blocks], per_row, pad=gap)
    right = grid([b[1] for b in blocks], per_row, pad=gap)
    return hstack([left, right], pad=5 * gap)
