"""Matplotlib figures (curves, occlusion maps, invariance), written straight to PNG files with
the non-interactive Agg backend."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
        ax.set_title(", ".join(panel), fontsize=9)
        if len(panel) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path)


def _cell_edges(centres: np.ndarray):
    """(first, last) outer edges of a regular grid of cell centres."""
    step = centres[1] - centres[0] if len(centres) > 1 else 1
    return centres[0] - 0.5 * step, centres[-1] + 0.5 * step


def occlusion_figure(path, image: np.ndarray, maps, class_names, label: int, box=None) -> Path:
    """Fig. 7 layout for one image: the image (with its box), (a) total activation of the
    strongest map, (b) true-class probability, (c) most probable class, each over the centre
    grid of the sweep. image: (H, W, 3) uint8; maps: occlusion.OcclusionMaps;
    box: (y0, x0, y1, x1)."""
    h, w = image.shape[:2]
    ext = (*_cell_edges(maps.xs), *_cell_edges(maps.ys)[::-1])  # left, right, bottom, top
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    axes[0].imshow(image)
    axes[0].set_title(f"{class_names[label]} (p={maps.base_prob:.2f})", fontsize=9)
    panels = [(maps.act, "viridis", f"(a) total activation, map {maps.fmap}"),
              (maps.prob_true, "jet", f"(b) p({class_names[label]})")]
    for ax, (m, cmap, title) in zip(axes[1:3], panels):
        ax.imshow(image, alpha=0.35)
        im = ax.imshow(m, cmap=cmap, extent=ext, alpha=0.75, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(title, fontsize=9)
    classes = np.unique(maps.top_class)
    idx = np.searchsorted(classes, maps.top_class)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20", len(classes))
    axes[3].imshow(image, alpha=0.35)
    im = axes[3].imshow(idx, cmap=cmap, extent=ext, alpha=0.75, interpolation="nearest",
                        vmin=-0.5, vmax=len(classes) - 0.5)
    cb = fig.colorbar(im, ax=axes[3], fraction=0.046, ticks=range(len(classes)))
    cb.ax.set_yticklabels([str(class_names[c]) for c in classes], fontsize=7)
    axes[3].set_title("(c) most probable class", fontsize=9)
    for ax in axes:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if box is not None:
            y0, x0, y1, x1 = box
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       ec="white", lw=1.5))
    return _save(fig, path)


def invariance_figure(path, curves: dict, layers, class_name_of_prob: str = "true class"
                      ) -> Path:
    """Fig. 5 layout: one column per transform (curves[kind] from
    invariance.invariance_curves), rows = distance at each layer, then the true-class
    probability; thin lines per image, thick line the mean."""
    kinds = list(curves)
    rows = list(layers) + ["prob"]
    units = {"translate": "shift (pixels, diagonal)", "scale": "scale factor",
             "rotate": "rotation (degrees)"}
    fig, axes = plt.subplots(len(rows), len(kinds), figsize=(4.0 * len(kinds), 2.6 * len(rows)),
                             squeeze=False)
    for j, kind in enumerate(kinds):
        c = curves[kind]
        for i, row in enumerate(rows):
            y = c["prob"] if row == "prob" else c["dist"][row]
            ax = axes[i, j]
            ax.plot(c["amounts"], y, color="0.7", lw=0.6)
            ax.plot(c["amounts"], y.mean(axis=1), color="C0", lw=2)
            ax.set_xlabel(units.get(kind, kind), fontsize=8)
            ax.set_ylabel(f"p({class_name_of_prob})" if row == "prob"
                          else f"Euclidean distance, {row}", fontsize=8)
    return _save(fig, path)


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
    return _save(fig, path)
