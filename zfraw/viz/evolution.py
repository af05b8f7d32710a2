"""The paper's Fig. 4: how chosen feature maps evolve during training. For each saved epoch,
the strongest activation of each map over a (small) dataset is projected to pixel space and
cropped to its receptive field; a strip per map shows the epochs left to right.

Decoupled from the checkpoint format: it takes any iterable of (epoch, net).
"""
from __future__ import annotations

import numpy as np

from .images import DISPLAY_PERCENTILE, grid, symmetric_uint8, tile_zoom, upscale
from .top9 import collect_topk, project_topk


def feature_evolution(snapshots, source, layer: str, maps, rule: str = "deconv",
                      batch_size: int = 64, limit=None) -> list:
    """[(epoch, {map: projection crop (C, s, s) or None when the map never fired})] for each
    (epoch, net) in snapshots, the strongest activation over the first ``limit`` images."""
    out = []
    for epoch, net in snapshots:
        best = collect_topk(net, source, [layer], k=1, batch_size=batch_size, limit=limit,
                            desc=f"evolution, epoch {epoch}")[layer]
        items = project_topk(net, source, layer, best, maps, rule, batch_size)
        # A map whose best activation is 0 (dead at this epoch) has nothing to project.
        out.append((epoch, {m: (it[0].proj if it and it[0].value > 0 else None)
                            for m, it in items.items()}))
    return out


def evolution_figure(evolution: list, maps) -> np.ndarray:
    """One row per map, one column per epoch (blank grey tile where the map was silent).
    -> (H, W, 3) uint8."""
    side = next((t.shape[1] for _, tiles in evolution for t in tiles.values() if t is not None),
                None)
    if side is None:
        raise ValueError("evolution_figure: no map fired at any epoch")
    z = tile_zoom(side)
    blank = np.full((side * z, side * z, 3), 128, np.uint8)
    tiles = [upscale(symmetric_uint8(tiles[m], DISPLAY_PERCENTILE), z)
             if tiles[m] is not None else blank for m in maps for _, tiles in evolution]
    return grid(tiles, ncols=len(evolution), pad=2, bg=255)
