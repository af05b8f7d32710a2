"""Matplotlib figures (curves, occlusion maps, invariance), written to PNG files with the
non-interactive Agg backend, atomically (:func:`zfraw.viz.images.write_file`). Pictures inside
them (images, projections, the invariance strips) are drawn with nearest-neighbour resampling,
the figure enlarged until their narrowest tile is at least ``MIN_TILE`` output pixels wide
(:func:`fit_tiles`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .images import MIN_TILE, write_file  # noqa: E402

DPI = 90            # the resolution figures are written at (output pixels per inch)
PAGE_INCHES = 13.0  # a figure's starting width, about the report page's column at DPI


def save_figure(fig, path, dpi: int = DPI) -> Path:
    """Lay ``fig`` out, write it as a PNG at ``path`` (atomically) and close it."""
    try:
        fig.tight_layout()
        return write_file(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def drawn_scale(fig, ax, dpi: int = DPI) -> float:
    """Output pixels per data unit at which ``ax`` (a picture's axes, equal aspect) is drawn
    once ``fig`` is laid out and written at ``dpi``."""
    fig.canvas.draw()                     # applies the equal aspect to the axes' box
    box = ax.get_window_extent()          # in pixels at the figure's own dpi
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    return min(box.width / abs(x1 - x0), box.height / abs(y1 - y0)) * dpi / fig.dpi


def fit_tiles(fig, tiles, min_px: int = MIN_TILE, dpi: int = DPI, tries: int = 6) -> float:
    """Lay ``fig`` out, enlarging it (both sides by one factor, fonts kept) until every tile is
    drawn at least ``min_px`` output pixels wide: ``tiles`` = [(axes, the width of its
    narrowest tile in the axes' data units, i.e. the picture's pixels)]. Returns the narrowest
    width drawn."""
    goal = min_px + 2   # a margin for the rounding of the axes' edges to whole pixels
    for _ in range(tries):
        fig.tight_layout()
        narrowest = min(drawn_scale(fig, ax, dpi) * w for ax, w in tiles)
        if narrowest >= goal:
            return narrowest
        fig.set_size_inches(fig.get_size_inches() * min(2.0, 1.02 * goal / narrowest))
    fig.tight_layout()
    return min(drawn_scale(fig, ax, dpi) * w for ax, w in tiles)


def training_curves(records, path, x_key: str = "epoch") -> Path:
    """Plot every numeric field of metrics records (dicts, one per line of metrics.jsonl)
    against ``x_key``: losses in one panel, accuracies (top-k) in another, every other field
    (learning rate, speed, times) in its own.
    Fields missing from a record are skipped for that record."""
    records = [r for r in records if x_key in r]
    if not records:
        raise ValueError(f"no metrics record has the field {x_key!r}")
    keys = sorted({k for r in records for k, v in r.items()
                   if k != x_key and isinstance(v, (int, float)) and not isinstance(v, bool)})
    losses = [k for k in keys if "loss" in k]
    scores = [k for k in keys if "top" in k or "acc" in k]
    panels = [p for p in (losses, scores) if p] + [[k] for k in keys
                                                    if k not in losses and k not in scores]
    ncols = min(3, len(panels)) or 1
    nrows = -(-len(panels) // ncols) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for k in panel:
            pts = [(r[x_key], r[k]) for r in records if isinstance(r.get(k), (int, float))]
            ax.plot(*zip(*pts), marker="o", ms=3, label=k)
        ax.set_xlabel(x_key)
        # a panel of several series is named by its legend; a long list would run into the
        # neighbouring panel's title
        ax.set_title("losses" if panel is losses else "top-k accuracies" if panel is scores
                     else panel[0], fontsize=9)
        if len(panel) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return save_figure(fig, path)


def _cell_edges(centres: np.ndarray):
    """(first, last) outer edges of a regular grid of cell centres."""
    step = centres[1] - centres[0] if len(centres) > 1 else 1
    return centres[0] - 0.5 * step, centres[-1] + 0.5 * step


def line_colour(n: int) -> tuple:
    """The RGB 0..255 colour of line n in matplotlib's default cycle (C0, C1, ...)."""
    from matplotlib.colors import to_rgb

    return tuple(int(round(255 * v)) for v in to_rgb(f"C{n % 10}"))


def short_name(name, width: int = 22) -> str:
    """A class name for a label: its first synonym ('swimming trunks, bathing trunks' ->
    'swimming trunks'), cut to ``width`` characters with an ellipsis."""
    name = str(name).split(",")[0].strip()
    return name if len(name) <= width else name[:width - 1] + "\u2026"


def occlusion_figure(path, image: np.ndarray, maps, class_names, label: int, box=None,
                     projections: np.ndarray | None = None, projection_tile: int | None = None,
                     title: str | None = None) -> Path:
    """The paper's Fig. 7 row for one image: (a) the image (with its box), (b) total
    activation of the strongest map of the layer in the unoccluded image, (c) that map's
    projection in this image (black frame) and its projections in other images (an (H, W, 3)
    uint8 picture, from :func:`zfraw.viz.top9` crops; left out when None), (d) true-class
    probability, (e) most probable class, each map over the centre grid of the sweep; (d) and
    (e) left out where the sweep has no probabilities (a net without a classifier).
    image: (H, W, 3) uint8; maps: occlusion.OcclusionMaps; box: (y0, x0, y1, x1);
    projection_tile: the width of the narrowest tile of ``projections`` (default: a third of
    its height); title: a line above the panels. The image and each projection tile are drawn
    at least MIN_TILE pixels wide (nearest neighbour)."""
    h, w = image.shape[:2]
    ext = (*_cell_edges(maps.xs), *_cell_edges(maps.ys)[::-1])  # left, right, bottom, top
    scores = maps.prob_true is not None
    widths = [1, 1.25] + ([1.5] if projections is not None else []) + ([1.25, 1.6] if scores
                                                                         else [])
    unit = PAGE_INCHES / 6.6   # the five panels of a net with a classifier fill the page
    fig, axes = plt.subplots(1, len(widths), figsize=(unit * sum(widths), 1.5 * unit),
                             gridspec_kw={"width_ratios": widths})
    if title:
        fig.suptitle(title, fontsize=11)
    axes = list(axes)
    ax_img, ax_act = axes[0], axes[1]
    ax_proj = axes[2] if projections is not None else None
    true = short_name(class_names[label])
    ax_img.imshow(image, interpolation="nearest")
    ax_img.set_title(f"(a) {true}" + (f"\np = {maps.base_prob:.2f}" if scores else ""),
                     fontsize=11)
    panels = [(ax_act, maps.act, "viridis", f"(b) total activation,\nmap {maps.fmap}")]
    if scores:
        ax_prob, ax_top = axes[-2], axes[-1]
        panels.append((ax_prob, maps.prob_true, "jet", f"(d) p({true})"))
    for ax, m, cmap, name in panels:
        ax.imshow(image, alpha=0.35, interpolation="nearest")
        im = ax.imshow(m, cmap=cmap, extent=ext, alpha=0.75, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, fraction=0.046)
        cb.ax.tick_params(labelsize=9)
        ax.set_title(name, fontsize=11)
    if scores:
        classes = np.unique(maps.top_class)
        idx = np.searchsorted(classes, maps.top_class)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20", len(classes))
        ax_top.imshow(image, alpha=0.35, interpolation="nearest")
        im = ax_top.imshow(idx, cmap=cmap, extent=ext, alpha=0.75, interpolation="nearest",
                           vmin=-0.5, vmax=len(classes) - 0.5)
        cb = fig.colorbar(im, ax=ax_top, fraction=0.07, ticks=range(len(classes)))
        cb.ax.set_yticklabels([short_name(class_names[c], 18) for c in classes], fontsize=10)
        ax_top.set_title("(e) most probable class", fontsize=11)
    for ax in [ax_img] + [ax for ax, *_ in panels] + ([ax_top] if scores else []):
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if box is not None:
            y0, x0, y1, x1 = box
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       ec="white", lw=1.5))
    tiles = [(ax_img, w)]
    if ax_proj is not None:
        ax_proj.imshow(projections, interpolation="nearest")
        ax_proj.set_title(f"(c) map {maps.fmap}: this image\n(black), then others",
                          fontsize=11)
        ax_proj.axis("off")
        tiles.append((ax_proj, projection_tile or projections.shape[0] / 3))
    fit_tiles(fig, tiles)
    return save_figure(fig, path)


TRANSFORM_AXES = {"translate": "vertical translation (pixels)", "scale": "scale (ratio)",
                  "rotate": "rotation (degrees)"}


def invariance_figure(path, curves: dict, layers, class_name_of_prob: str = "true class",
                      strips: dict | None = None, names=None, strip_tile: int | None = None
                      ) -> Path:
    """The paper's Fig. 5 layout: one row per transform (a: translation, b: scale,
    c: rotation; curves[kind] from invariance.invariance_curves); column 1 the example images
    undergoing it (strips[kind]: an (H, W, 3) uint8 picture, one image per row, in the
    lines' colours), then the Euclidean distance between the original's and the transformed
    image's feature vectors at each of ``layers`` (the paper: layers 1 and 7), then the
    probability of the true class (left out where the curves have none: a net without a
    classifier). One coloured line per image, named by ``names``. strip_tile: the width of
    one image in the strips (default: a fifth of a strip's width); each is drawn at least
    MIN_TILE pixels wide (nearest neighbour)."""
    kinds = list(curves)
    rows = list(layers) + (["prob"] if all(c["prob"] is not None for c in curves.values())
                           else [])
    ncols = len(rows) + (strips is not None)
    widths = ([1.5] if strips is not None else []) + [1] * len(rows)
    unit = PAGE_INCHES / (1.5 + len(layers) + 1)  # strips, distances and p(true) fill the page
    fig, axes = plt.subplots(len(kinds), ncols, squeeze=False,
                             figsize=(unit * sum(widths), 1.4 * unit * len(kinds)),
                             gridspec_kw={"width_ratios": widths})
    for i, kind in enumerate(kinds):
        c = curves[kind]
        letter = "abc"[i] if i < 3 else str(i + 1)
        col = 0
        if strips is not None:
            axes[i, 0].imshow(strips[kind], interpolation="nearest")
            axes[i, 0].axis("off")
            axes[i, 0].set_title(f"{letter}1: {TRANSFORM_AXES.get(kind, kind).split(' (')[0]}",
                                 fontsize=10)
            col = 1
        for j, row in enumerate(rows):
            ax = axes[i, col + j]
            y = c["prob"] if row == "prob" else c["dist"][row]
            for n in range(y.shape[1]):
                ax.plot(c["amounts"], y[:, n], color=f"C{n}", lw=1.4, marker=".", ms=3,
                        label=short_name(names[n], 16) if names is not None else None)
            ax.set_xlabel(TRANSFORM_AXES.get(kind, kind), fontsize=9)
            ax.set_ylabel(f"p({class_name_of_prob})" if row == "prob"
                          else f"Euclidean distance, {row}", fontsize=9)
            ax.set_title(f"{letter}{col + j + 1}: " + (f"p({class_name_of_prob})" if row == "prob"
                                                       else f"{row} distance"), fontsize=10)
            ax.tick_params(labelsize=8)
            if row == "prob":
                ax.set_ylim(-0.02, 1.02)
            if i == 0 and j == len(rows) - 1 and names is not None:
                ax.legend(fontsize=7, loc="best")
    if strips is not None:
        fit_tiles(fig, [(axes[i, 0], strip_tile or strips[k].shape[1] / 5)
                        for i, k in enumerate(kinds)])
    return save_figure(fig, path)


def bar_groups(path, groups: dict, ylabel: str, title: str = "") -> Path:
    """Grouped bars: groups = {group label: {bar label: value}} (e.g. {'alexnet': {...},
    'zf': {...}}); bars with the same label share a colour."""
    labels = list(dict.fromkeys(b for g in groups.values() for b in g))  # first-seen order
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(labels) * len(groups) ** 0.5, 3.2))
    width = 0.8 / max(len(groups), 1)
    for k, (g, bars) in enumerate(groups.items()):
        xs = np.arange(len(labels)) + k * width
        ax.bar(xs, [bars.get(b, np.nan) for b in labels], width, label=g)
    ax.set_xticks(np.arange(len(labels)) + width * (len(groups) - 1) / 2)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)
