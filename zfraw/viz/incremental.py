"""Incremental occlusion: each occluded copy recomputes only what the occluder can change.

An occluder changes a small window of the input; a k x k / stride s layer changes only the
outputs whose windows overlap the changed input, and a pointwise layer (ReLU, LRN across maps,
eval-mode dropout) the same window. So instead of a full forward per occluded image (what
Captum's Occlusion and zfraw's plain sweep do), the unoccluded image's activations are computed
once and, layer after layer, each occluded copy carries only its changed window (a patch): the
layer runs on the patch's receptive region, read from the base activations with the patch laid
over them. Once a window covers its whole map, or at the first layer with no spatial structure
(Flatten), the copies are completed into full maps and the rest of the net runs as usual. This
is Krypton's idea (Nakandala, Kumar, Papakonstantinou, SIGMOD 2019), who report 5-35x over
re-running the net.

Exact: every output inside a window is computed from exactly the inputs the full forward reads
(padding written out explicitly: zeros for convolution, -inf for max pooling, where padding
never wins), and every output outside it equals the base's. The products sum the same terms in
the same order per output, so results equal the full forward's to the rounding of the net's
dtype: float32 for a trained net, and about 1e-15 for a net cast to float64, whose input is
given in float64 too (the tests compare both).

Windows of one batch share one size (the largest; windows near the border are moved inward),
so each layer runs once per batch on an (n, C, h, w) array.
"""
from __future__ import annotations

import copy

import numpy as np

from ..layers import Conv2d, Dropout, LocalResponseNorm, MaxPool2d, ReLU
from ..ops.loss import softmax
from .forward import input_dtype

POINTWISE = (ReLU, LocalResponseNorm, Dropout)   # dropout: the identity in eval mode


def _unpadded(layer):
    """A view of a conv or pool layer (same parameters) that pads nothing; its input comes with
    the padding already written out."""
    clone = copy.copy(layer)
    clone.pad, clone.pads = 0, (0, 0, 0, 0)
    if isinstance(layer, MaxPool2d):
        clone.ceil_mode = False
    return clone


def _out_window(a, h, size_out, k, s, pad_begin):
    """Outputs [o0, o1) of a k/s layer whose windows overlap input rows [a, a + h) (one axis)."""
    o0 = max(0, (a + pad_begin - k) // s + 1)
    o1 = min(size_out, -(-(a + h + pad_begin) // s))
    return o0, o1


def _read(out, base, patch, start, region):
    """Write into ``out`` (C, r1-r0, c1-c0), which holds the fill value, base (C, H, W) with
    patch (C, h, w) laid over it at start (y, x), read over region (r0, c0, r1, c1); where the
    region reaches outside the map, ``out`` keeps the fill."""
    _, hh, ww = base.shape
    r0, c0, r1, c1 = region
    y0, y1, x0, x1 = max(r0, 0), min(r1, hh), max(c0, 0), min(c1, ww)
    out[:, y0 - r0:y1 - r0, x0 - c0:x1 - c0] = base[:, y0:y1, x0:x1]
    py, px = start
    ph, pw = patch.shape[1:]
    a0, a1, b0, b1 = max(py, r0), min(py + ph, r1), max(px, c0), min(px + pw, c1)
    if a0 < a1 and b0 < b1:
        out[:, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = patch[:, a0 - py:a1 - py, b0 - px:b1 - px]


def _complete(base, patches, starts):
    """Full maps (n, C, H, W): base with each image's patch laid over it."""
    full = np.repeat(base[None], len(patches), axis=0)
    h, w = patches.shape[2:]
    for i, (y, x) in enumerate(starts):
        full[i, :, y:y + h, x:x + w] = patches[i]
    return full


class IncrementalOcclusion:
    """``occ = IncrementalOcclusion(net, image, layer)``; ``occ(boxes, fill)`` -> (probs (n, K),
    activation of ``layer`` (n, C, h, w)) for copies of image (C, H, W) (a net input, on the
    host) with each box (y0, x0, y1, x1) set to ``fill``, equal to a full forward of the
    occluded copies. Every layer of the net from ``layer`` on may be anything; the layers before
    the first Flatten must be convolutions, max poolings or pointwise layers (the others
    are run in full). The net runs in eval mode on the CPU.

    ``last_macs``: the multiply-adds (conv and fc) the last call did, against
    ``full_macs_per_image`` for a full forward: their ratio per copy bounds the speed-up."""

    def __init__(self, net, image: np.ndarray, layer: str):
        if net.device != "cpu":
            raise ValueError("incremental occlusion runs on the CPU (host arrays)")
        self.net, self.layer = net.eval(), net.index(layer)
        # In the net's dtype, as the full forward gives it (viz.forward): a float32 image in
        # a float64 net would make the first layer's Winograd transform round in float32.
        self.image = np.asarray(image, input_dtype(net))
        names = [ly.name for ly in net.layers]
        _, acts = net.forward(self.image[None], capture=names)
        self.base = [self.image] + [acts[n][0] for n in names]    # input of layer i: base[i]
        self.full_macs_per_image = sum(row["macs"] for row in net.summary())
        self.last_macs = 0

    def __call__(self, boxes, fill: float = 0.0):
        image, (_, hh, ww) = self.image, self.image.shape
        clipped = [(max(y0, 0), max(x0, 0), min(y1, hh), min(x1, ww)) for y0, x0, y1, x1 in boxes]
        h = max(1, max(y1 - y0 for y0, _, y1, _ in clipped))
        w = max(1, max(x1 - x0 for _, x0, _, x1 in clipped))
        starts = [(min(y0, hh - h), min(x0, ww - w)) for y0, x0, _, _ in clipped]
        patches = np.stack([image[:, y:y + h, x:x + w] for y, x in starts])
        for i, (y0, x0, y1, x1) in enumerate(clipped):
            y, x = starts[i]
            patches[i, :, y0 - y:y1 - y, x0 - x:x1 - x] = fill
        full, target = None, None
        # The layers are run here one by one, on patches: no forward of the net is complete,
        # so nothing may be projected from their saved state afterwards.
        self.net.last_forward = None
        self.last_macs = 0
        for i, layer in enumerate(self.net.layers):
            if full is None and not isinstance(layer, (Conv2d, MaxPool2d) + POINTWISE):
                full = _complete(self.base[i], patches, starts)
            if full is not None:
                self.last_macs += len(full) * layer.macs(full.shape[1:])
                full = layer.forward(full)
            elif isinstance(layer, POINTWISE):
                patches = layer.forward(patches)
            else:
                patches, starts = self._window_layer(layer, i, patches, starts)
                if patches.shape[2:] == self.base[i + 1].shape[1:]:
                    full = patches          # the window covers the map: run the rest in full
            if i == self.layer:
                target = full if full is not None else _complete(self.base[i + 1], patches,
                                                                 starts)
        return softmax(full.astype(np.float64)), target

    def _window_layer(self, layer, i, patches, starts):
        """Run conv/pool ``layer`` (the net's i-th) on each patch's receptive region; returns
        the output patches and their starts."""
        k, s, pt, pl = layer.window(self.base[i].shape)
        oh, ow = self.base[i + 1].shape[1:]
        ph, pw = patches.shape[2:]
        wins = [(_out_window(y, ph, oh, k, s, pt), _out_window(x, pw, ow, k, s, pl))
                for y, x in starts]
        h = max(y1 - y0 for (y0, y1), _ in wins)
        w = max(x1 - x0 for _, (x0, x1) in wins)
        out_starts = [(min(y0, oh - h), min(x0, ow - w)) for (y0, _), (x0, _) in wins]
        fill = 0.0 if isinstance(layer, Conv2d) else -np.inf
        regions = [(y * s - pt, x * s - pl, (y + h - 1) * s - pt + k, (x + w - 1) * s - pl + k)
                   for y, x in out_starts]
        base = self.base[i]
        sub = np.full((len(patches), base.shape[0], (h - 1) * s + k, (w - 1) * s + k), fill,
                      base.dtype)
        for out, p, st, r in zip(sub, patches, starts, regions):
            _read(out, base, p, st, r)
        unpadded = _unpadded(layer)
        self.last_macs += len(sub) * unpadded.macs(sub.shape[1:])
        return unpadded.forward(sub), out_starts
