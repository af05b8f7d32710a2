"""The paper's Fig. 4: how chosen feature maps evolve during training. For each saved epoch,
the strongest activation of each map over the training images (a subset of them on a CPU) is
projected to pixel space and cropped to its receptive field; a strip per map shows the epochs
left to right. The maps are chosen once and followed through every epoch.

Decoupled from the checkpoint format: it takes any iterable of (epoch, net).
"""
from __future__ import annotations

import numpy as np

from .images import (DISPLAY_PERCENTILE, grid, hstack, symmetric_uint8, text_band, tile_zoom,
                     upscale, vstack)
from .top9 import collect_topk, project_topk


def feature_evolution(snapshots, source, layer, maps, rule: str = "deconv",
                      batch_size: int = 64, limit=None) -> list:
    """[(epoch, {map: projection crop (C, s, s) or None when the map never fired})] for each
    (epoch, net) in snapshots, the strongest activation over the first ``limit`` images of
    source (the paper: the training images) of the same ``maps`` at every epoch."""
    return [(e, by_layer[layer]) for e, by_layer in
            evolution_by_layer(snapshots, source, {layer: maps}, rule, batch_size, limit)]


def evolution_by_layer(snapshots, source, maps: dict, rule: str = "deconv",
                       batch_size: int = 64, limit=None) -> list:
    """Several layers at once, one pass over the images per epoch: maps = {layer: [map, ...]}
    (chosen once, the same at every epoch). -> [(epoch, {layer: {map: crop or None}})]."""
    out = []
    for epoch, net in snapshots:
        best = collect_topk(net, source, list(maps), k=1, batch_size=batch_size, limit=limit,
                            desc=f"evolution, epoch {epoch}")
        tiles = {}
        for layer, chosen in maps.items():
            items = project_topk(net, source, layer, best[layer], chosen, rule, batch_size)
            # A map whose best activation is 0 (dead at this epoch) has nothing to project.
            tiles[layer] = {m: (it[0].proj if it and it[0].value > 0 else None)
                            for m, it in items.items()}
        out.append((epoch, tiles))
    return out


def evolution_figure(evolution: list, maps, labels: bool = False) -> np.ndarray:
    """One row per map, one column per epoch (blank grey tile where the map was silent), with
    the epoch above each column when ``labels``. -> (H, W, 3) uint8."""
    side = next((t.shape[1] for _, tiles in evolution for t in tiles.values() if t is not None),
                None)
    if side is None:
        raise ValueError("evolution_figure: no map fired at any epoch")
    z = tile_zoom(side, 56)
    blank = np.full((side * z, side * z, 3), 128, np.uint8)
    tiles = [upscale(symmetric_uint8(tiles[m], DISPLAY_PERCENTILE), z)
             if tiles[m] is not None else blank for m in maps for _, tiles in evolution]
    fig = grid(tiles, ncols=len(evolution), pad=2, bg=255)
    if not labels:
        return fig
    head = hstack([text_band(str(e), side * z, 13) for e, _ in evolution], pad=2)
    return vstack([hstack([np.full((head.shape[0], 2, 3), 255, np.uint8), head], pad=0), fig],
                  pad=0)
