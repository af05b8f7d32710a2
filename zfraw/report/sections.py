"""The report's sections, in page order, each one of the paper's figures (or zfraw's addition
to it), drawn from plain values: the net, its images, the layers to read and the numbers that
the options set. Where the subjects differ (a run or an imported net), the difference is in
those values (:mod:`zfraw.report.subject`), not in the sections."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..backend import to_host
from ..viz import correspondence as corr
from ..viz import plots
from ..viz.evolution import evolution_by_layer, evolution_figure
from ..viz.filters import diagnostics, filter_grid
from ..viz.forward import probs_and_features, probs_and_map
from ..viz.html import PAGE_WIDTH
from ..viz.images import (DISPLAY_PERCENTILE, MIN_TILE, framed, grid, hstack, resize_uint8,
                          save_png, scale_to_uint8, symmetric_uint8, text_band, tile_zoom, titled,
                          upscale, vstack)
from ..viz.incremental import IncrementalOcclusion
from ..viz.invariance import TRANSFORMS, invariance_curves
from ..viz.occlusion import drop_share_in_box, occlude, occlusion_sweep
from ..viz.projection import forward_to, project_strongest
from ..viz.top9 import collect_topk, layer_figure, map_blocks, project_topk
from .records import write_record

TRUE = "the true class"  # what the label-reading sections measure, unless told otherwise
# ``truth`` None: the net has no classifier (an imported headless graph), so nothing has a
# probability; the sections that read one leave that part out and say so (:func:`no_classifier`).


def no_classifier(net, what: str) -> str:
    """The one line a section writes where it leaves out ``what`` (something that needs class
    scores) for a net without a classifier."""
    out = "x".join(map(str, net.shapes[-1]))
    return (f"The model has no classifier (its graph ends in {out} features, not class "
            f"scores): {what} left out.")


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def present(net, names):
    """The names that are layers of net, in order."""
    have = {layer.name for layer in net.layers}
    return [n for n in names if n in have]


def section_training(page, out, records):
    """A run's training curves and its last epoch's numbers (records: metrics.jsonl's)."""
    page.heading("Training")
    if records:
        page.image(plots.training_curves(records, out / "training.png"),
                   "metrics.jsonl per epoch (loss, top-1/top-5, learning rate, speed)")
        last = records[-1]
        page.table(["field", "last epoch"], [[k, v] for k, v in last.items()])
    else:
        page.text("No metrics.jsonl records in this run.")


def random_maps(values, n: int, seed: int, salt: str = "") -> list:
    """n maps drawn at random (seeded by seed and salt, e.g. the layer's name, so layers of
    the same width get different maps) among those whose top activation is positive (a map
    that never fires has nothing to show), sorted; all of them when there are fewer."""
    fired = np.flatnonzero(np.asarray(values)[:, 0] > 0)
    if len(fired) <= n:
        return [int(m) for m in fired]
    rng = np.random.default_rng([seed] + [ord(ch) for ch in salt])
    return sorted(int(m) for m in rng.choice(fired, n, replace=False))


def section_filters(page, out, net, source, layers, label, renorm, other=None, *, limit, maps,
                    seed, batch_size, distinct):
    """Fig. 6: the first conv's filters (``layers``: (first conv, its ReLU, second conv or
    None)); ``label`` and ``renorm`` name the net and how its filters were kept in bounds.
    ``other``: another run's (net, name, renorm note) to draw beside them (--compare), with both
    nets' layer-2 projections (``maps``, ``seed``, ``distinct``: as the top-9 section's). Then
    the filters' diagnostics over the first ``limit`` images."""
    page.heading("First-layer filters (Fig. 6 (a)-(c)) and layer-2 projections (Fig. 6 (d), (e))")
    w = to_host(net.layer(layers[0]).params["W"])
    bgr = source.spec.order == "BGR" and w.shape[1] == 3
    mine = filter_grid(w[:, ::-1] if bgr else w)
    me = f"{label}: {net.arch}, {renorm}"
    if other is None:
        page.image(save_png(titled(mine, me), out / "conv1.png"),
                   f"Fig. 6 (c): {layers[0]} filters ({w.shape[2]}x{w.shape[3]} pixels, each "
                   "drawn large and stretched to its own range)"
                   + (" (the net reads BGR: channels shown as RGB)" if bgr else "")
                   + ". Give --compare RUN (e.g. a run trained with --renorm-radius 0, or the "
                   "alexnet variant) for the paper's side-by-side panels.")
    else:
        other_net, other_name, other_renorm = other
        them = f"{other_name}: {other_net.arch}, {other_renorm}"
        w2 = to_host(other_net.layer("conv1").params["W"])
        own = hstack([titled(mine, me), titled(filter_grid(w2), them)], pad=30)
        common = hstack([titled(filter_grid(w[:, ::-1] if bgr else w, shared=True),
                                "the same, one scale for all filters of the net"),
                         titled(filter_grid(w2, shared=True),
                                "the same, one scale for all filters of the net")], pad=30)
        page.image(save_png(vstack([own, common], pad=12), out / "conv1.png"),
                   f"Fig. 6 (a)-(c): conv1 filters of the two runs side by side; top: each "
                   f"stretched to its own range, bottom: one symmetric scale per net (zero = "
                   f"grey: filters that dominate stand out). Left {me}; right {them}. The "
                   f"paper's (a) is trained "
                   "without renormalization (a few filters dominate), (b) is Krizhevsky's "
                   "11x11/4 first layer, (c) its own 7x7/2 one.")
        section_layer2_pair(page, out, net, me, other_net, them, source, maps=maps, seed=seed,
                            batch_size=batch_size, distinct=distinct)
    if layers[2] is None:
        page.text("The net has one convolution: no layer-2 aliasing diagnostics.")
        return
    page.heading("Filter diagnostics (zfraw's addition: the paper shows these only as pictures)",
                 3)
    runs = {label: diagnostics(net, source, limit=limit, layers=layers)}
    if other is not None:
        runs[other[1]] = diagnostics(other[0], source, limit=limit)
    page.text("Dead: positive at < 1% of (image, position) pairs. Bands of each filter's power "
              "spectrum by radial frequency (Nyquist = 1): low < 0.25 <= mid < 0.75 <= high; "
              "dominated: > 80% of the energy in one band. conv2 Nyquist share: energy of conv2 "
              "maps at radial frequency >= 0.75. Structure: the mean share of each conv1 "
              "filter's spectral energy in its strongest 10% of frequencies (random filters "
              "0.22; edges, Gabor-like patterns and colour blobs 0.46-0.71). "
              "Shift sensitivity: relative change of conv2's "
              "position-averaged features when the image moves by s pixels diagonally "
              "(s below conv2's stride; an alias-free layer would barely change)."
              + ("" if layers == ("conv1", "relu1", "conv2") else
                 f" Here conv1 is {layers[0]} (rectified: {layers[1]}) and conv2 is "
                 f"{layers[2]}."))
    rows = []
    for name, d in runs.items():
        sens = ", ".join(f"{s}px: {v:.3f}" for s, v in zip(d["shifts"], d["shift_sensitivity"]))
        rows.append([name, d["filters"], len(d["dead"]), len(d["low_dominated"]),
                     len(d["high_dominated"]), d["mean_mid_share"], d["mean_structure"],
                     d["conv2_nyquist_share"], sens])
    page.table(["net", "conv1 filters", "dead", "low-dominated", "high-dominated",
                "mean mid-band share", "conv1 structure", "conv2 Nyquist share",
                "conv2 shift sensitivity"], rows)
    bars = {name: {"dead": len(d["dead"]) / d["filters"],
                   "low-dom.": len(d["low_dominated"]) / d["filters"],
                   "high-dom.": len(d["high_dominated"]) / d["filters"],
                   "mid share": d["mean_mid_share"], "structure": d["mean_structure"],
                   "conv2 Nyquist": d["conv2_nyquist_share"],
                   "conv2 shift": float(np.mean(d["shift_sensitivity"]))}
            for name, d in runs.items()}
    page.image(plots.bar_groups(out / "filter_diagnostics.png", bars, "fraction / share",
                                "first-layer diagnostics (zfraw's addition)"),
               "the table's numbers as fractions")


def section_layer2_pair(page, out, net, me, other_net, them, source, *, maps, seed, batch_size,
                        distinct, layer="relu2"):
    """Fig. 6 (d)/(e): layer-2 top-9 projections of the two nets side by side, ``maps`` maps of
    each drawn at random (``seed``)."""
    panels = []
    for n, title in ((net, me), (other_net, them)):
        if layer not in {ly.name for ly in n.layers}:
            page.text(f"{title} has no {layer}: no layer-2 comparison.")
            return
        tk = collect_topk(n, source, [layer], k=9, batch_size=batch_size, distinct=distinct,
                          desc="")[layer]
        chosen = random_maps(tk.values, maps, seed, layer)
        items = project_topk(n, source, layer, tk, chosen, batch_size=batch_size)
        blocks = [map_blocks(items[m])[0] for m in chosen if items[m]]
        if not blocks:
            page.text(f"{title}: no {layer} map fired on these images.")
            return
        per_row = int(np.ceil(np.sqrt(len(blocks))))
        panels.append(titled(grid(blocks, per_row, pad=8), f"{title}\n{layer}, maps {chosen}"))
    page.image(save_png(hstack(panels, pad=30), out / "layer2_compare.png"),
               f"Fig. 6 (d), (e): {layer} of the two nets side by side, for {maps} maps of "
               "each drawn at random: each 3x3 block is one map's top-9 projections over the "
               "validation images (as Fig. 2). In the paper, (d) is Krizhevsky's layer 2 "
               "(aliasing from the 4-pixel stride), (e) its own.")


def section_rules(page, out, net, source, layer, n_images=4):
    """Sec. 2.1: the strongest ``layer`` activation of each of the first ``n_images`` images
    projected with the deconvnet's rule, the gradient's and guided backpropagation's."""
    page.heading(f"Projection rules at {layer} (Sec. 2.1)")
    x = source.inputs(np.arange(min(n_images, len(source))))
    act = to_host(forward_to(net, x, layer))
    act = act.reshape(len(x), act.shape[1], -1).max(axis=2) if act.ndim == 4 else act
    fmap = act.argmax(axis=1)  # each image's strongest map
    cols = [[upscale(scale_to_uint8(p, 0, 255), tile_zoom(p.shape[1], 96))
             for p in source.pixels(np.arange(len(x)))]]
    for rule in ("deconv", "backprop", "guided"):
        proj, _, _ = project_strongest(net, x, layer, fmap, rule)
        cols.append([upscale(symmetric_uint8(p, DISPLAY_PERCENTILE), tile_zoom(p.shape[1], 96))
                     for p in proj])
    names = ("image", "deconv\n(the paper)", "backprop", "guided")
    head = hstack([text_band(t, c[0].shape[1], 14) for t, c in zip(names, cols)])
    rows = [hstack([c[i] for c in cols]) for i in range(len(x))]
    page.image(save_png(vstack([head] + rows), out / "rules.png"),
               f"columns: the image, then the strongest {layer} activation of its strongest map "
               "projected with 'deconv' (the paper: ReLU on the signal), 'backprop' (gradient: "
               "ReLU mask of the forward pass) and 'guided' (both); zero = grey. (The paper "
               "shows deconv only; the other two columns are zfraw's addition.)")


def section_top9(page, out, net, source, layers, topk=None, *, maps, seed, batch_size, distinct,
                 all_maps=None):
    """Fig. 2 for each of ``layers``: ``maps`` maps drawn at random (``seed``; every map of
    layer ``all_maps``), each map's top-9 projections beside their image patches; ``distinct``:
    the 9 cells are 9 distinct images. The pass's top activations are added to ``topk``
    ({layer: TopK}), where the occlusion section finds its layer's."""
    page.heading("Top-9 activations per feature map (Fig. 2)")
    t0 = time.perf_counter()
    best = collect_topk(net, source, layers, k=9, batch_size=batch_size, distinct=distinct)
    if topk is not None:
        topk.update(best)
    cells = ("the 9 validation images where the map's activation is strongest, one image per "
             "cell, each at its strongest position (9 distinct images, as in the paper; "
             "--top9-positions keeps the 9 strongest (image, position) pairs, where one image "
             "can fill several cells)") if distinct else (
             "the 9 strongest (image, position) pairs (--top9-positions: one image can fill "
             "several cells, at neighbouring positions)")
    page.text(f"One streaming pass over {len(source)} validation images kept, for every map of "
              f"{', '.join(layers)}, {cells} ({time.perf_counter() - t0:.1f} s). Shown per "
              f"layer, as in the paper: {maps} maps drawn at random (seed {seed}; "
              "--maps N, --seed S; --all-maps LAYER for all) among those that fire; left: each "
              "map's 9 projections (deconv, zero = grey) as a 3x3 block, each cropped to the "
              "activation's receptive field; right, at the same place: the image patches "
              "under them. Maps are listed row by row.")
    for layer in layers:
        tk = best[layer]
        if all_maps == layer:
            chosen = list(range(tk.values.shape[0]))
        else:
            chosen = random_maps(tk.values, maps, seed, layer)
        items = project_topk(net, source, layer, tk, chosen, batch_size=batch_size)
        shown = [m for m in chosen if items[m]]
        rf = net.receptive_field(layer)[0]
        if not shown:
            page.text(f"{layer}: no map fired on these images.")
            continue
        fig = layer_figure([map_blocks(items[m]) for m in shown], max_width=PAGE_WIDTH)
        page.image(save_png(fig, out / f"top9_{layer}.png"),
                   f"{layer}: maps {shown} (receptive field {rf} px); left projections, right "
                   "patches")
        log(f"top-9 {layer}: {len(shown)} maps")


def section_evolution(page, out, net, training, layers, *, n_images, n_maps, seed, batch_size):
    """Fig. 4 from a run's epoch checkpoints (``training``: the subject's Training): for
    ``n_maps`` maps per layer drawn at random (``seed``), the strongest activation over
    ``n_images`` training images at every epoch."""
    page.heading("Feature evolution during training (Fig. 4)")
    if not training.epochs:
        page.text("No epoch-NNN.npz checkpoints in this run.")
        return
    train = training.images(n_images)
    # The maps to follow, chosen once: drawn at random among those that fire in the final net
    # on these training images; the same maps at every epoch.
    final = collect_topk(net, train, layers, k=1, batch_size=batch_size, desc="")
    maps = {layer: random_maps(final[layer].values, n_maps, seed, layer) for layer in layers}
    maps = {layer: m for layer, m in maps.items() if m}
    if not maps:
        page.text("No map of these layers fires in the final net.")
        return
    evo = evolution_by_layer(training.snapshots(), train, maps, batch_size=batch_size)
    epochs = [e for e, _ in evo]
    page.text(f"For each saved epoch and the final one ({', '.join(map(str, epochs))}; the "
              f"paper: 1, 2, 5, 10, 20, 30, 40, 64), the strongest activation of each map over {len(train)} training "
              f"images (a seeded sample of the run's training set, --evolution-images; the "
              f"paper: all of them), projected to pixel space with the deconvnet and cropped to "
              f"its receptive field. Rows: {n_maps} maps per layer drawn at random "
              f"(seed {seed}) among those that fire in the final net, the same maps at "
              "every epoch; columns: epochs. Grey: the map did not fire at that epoch.")
    for layer, chosen in maps.items():
        fig = evolution_figure([(e, t[layer]) for e, t in evo], chosen, labels=True)
        page.image(save_png(titled(fig, layer), out / f"evolution_{layer}.png"),
                   f"{layer}, maps {chosen} (rows), epochs {epochs} (columns)")


INVARIANCE_SHOWN = 5   # transformed copies of each example image drawn in column 1


def invariance_strip(source, x, kind, amounts, zoom):
    """Column 1 of a Fig. 5 row: each image (a row, marked in its line's colour) at a few of
    the amounts, labelled on top. -> (H, W, 3) uint8."""
    pick = np.unique(np.linspace(0, len(amounts) - 1, INVARIANCE_SHOWN).round().astype(int))
    rows = []
    for n, img in enumerate(x):
        tiles = [upscale(scale_to_uint8(source.to_pixels(TRANSFORMS[kind](img, amounts[i])[None])[0],
                                        0, 255), zoom) for i in pick]
        mark = np.zeros((tiles[0].shape[0], 8, 3), np.uint8)
        mark[:] = plots.line_colour(n)
        rows.append(hstack([mark] + tiles, pad=3))
    labels = [f"{amounts[i]:g}" for i in pick]
    head = hstack([text_band("", 8, 12)] + [text_band(t, tiles[0].shape[1], 12) for t in labels],
                  pad=3)
    return vstack([head] + rows, pad=3)


def section_invariance(page, out, net, source, layers, truth=TRUE, *, n_images, batch_size,
                       min_prob=0.5):
    """Fig. 5: feature distances at ``layers`` and the probability of ``truth`` as ``n_images``
    images (one per class; with the true class known, images the net classifies correctly with
    p(true) >= ``min_prob`` first, as the paper's examples are) are moved, scaled and rotated;
    with ``truth`` None (no classifier) the distances only."""
    page.heading("Invariance to vertical translation, scale and rotation (Fig. 5)")
    scores = truth is not None
    if not scores:
        page.text(no_classifier(net, "the probability curves (the paper's last column) are"))
    meets = None
    if truth == TRUE:
        p_true, top1 = class_scores(net, source, batch_size)
        meets = (top1 == source.labels) & (p_true >= min_prob)
    idx = first_per_class(source, n_images, fill=truth != TRUE, among=meets)
    x, labels = source.inputs(idx), source.labels[idx]
    crop = source.crop
    step = max(1, crop // 32)
    amounts = {"translate": np.arange(-(crop // 4), crop // 4 + 1, step),
               "scale": np.round(np.linspace(0.6, 1.8, 13), 2),
               "rotate": np.arange(0, 361, 15)}
    feats = probs_and_features(net, layers, batch_size, probs=scores)
    curves = {k: invariance_curves(feats, x, labels, k, a, layers) for k, a in amounts.items()}
    zoom = tile_zoom(crop)
    strips = {k: invariance_strip(source, x, k, a, zoom) for k, a in amounts.items()}
    names = [source.names[c] for c in labels]
    files = "" if source.files is None else f" ({', '.join(source.files[i] for i in idx)})"
    which = ("" if meets is None else f"that the net classifies correctly with p(true class) "
             f">= {min_prob:g} (--invariance-min-prob) and ")
    short = "" if meets is None or meets[idx].all() else (
        f" Only {int(meets[idx].sum())} of them meet the first condition: the others are the "
        f"first images of classes not yet taken.")
    page.text(f"The example images, by a rule: walking the validation images in the dataset's "
              f"order, each image {which}whose class has not been taken yet, until {len(idx)} "
              f"(--invariance-images; one class each): validation images "
              f"{', '.join(map(str, idx))}{files}, of "
              f"{', '.join(plots.short_name(n) for n in names)}.{short}")
    page.image(plots.invariance_figure(out / "invariance.png", curves, layers,
                                       "true class" if truth == TRUE else "top-1 class",
                                       strips, names, strip_tile=crop * zoom),
               f"Rows, as the paper's: (a) vertical translation (pixels, + moves the image "
               f"down), (b) scale (ratio), (c) rotation (degrees), each about the image centre "
               f"with the uncovered border set to the mean. Columns: 1 the {len(idx)} example "
               f"validation images undergoing the transform (one per row, coloured as its "
               f"lines; a few of the amounts, labelled on top; each at least {MIN_TILE} px "
               f"wide, nearest neighbour), 2-{len(layers) + 1}: Euclidean distance between "
               f"the feature vectors of the original and the transformed image at "
               f"{' and '.join(layers)} (the paper: layers 1 and 7)"
               + (f", {len(layers) + 2}: the probability of {truth}." if scores else "."))


def first_per_class(source, n, fill: bool = False, among=None):
    """Up to n image indices, one per class, so curves cover different classes: walking the
    images in order, each one whose class has not been taken yet, until n. With ``among`` (a
    bool per image, e.g. "classified correctly and confidently"), the walk takes only images
    where it holds, then, where that gives fewer than n, walks the others for the classes not
    yet taken. With ``fill``, topped up with the first other images where there are fewer
    classes than n (an imported net's predictions may fall in one class)."""
    labels = np.asarray(source.labels)
    ok = np.ones(len(labels), bool) if among is None else np.asarray(among, bool)
    picks, taken = [], set()
    for candidates in (np.flatnonzero(ok), np.flatnonzero(~ok)):
        for i in candidates:
            if len(picks) == n:
                break
            if labels[i] not in taken:
                taken.add(labels[i])
                picks.append(int(i))
    picks = sorted(picks)
    if fill:
        picks = sorted(picks + [i for i in range(len(source)) if i not in picks][:n - len(picks)])
    return np.array(picks)


def occlusion_projections(net, source, layer, n, fmap, topk, batch_size, others: int = 8):
    """Fig. 7 (c): map ``fmap``'s strongest activation in image n projected into the whole
    image (black frame, first), then its projections in up to ``others`` other images (the
    top-9 pass's, cropped to the receptive field, white frame), 3 a row, each tile resized
    (nearest neighbour) to the crop's side enlarged to at least MIN_TILE pixels.
    -> ((H, W, 3) uint8, the tiles' width without their frame)."""
    side = source.crop * tile_zoom(source.crop)
    proj, _, _ = project_strongest(net, source.inputs([n]), layer, fmap)
    tiles = [framed(resize_uint8(symmetric_uint8(proj[0], DISPLAY_PERCENTILE), side), 3, 0)]
    items = [it for it in project_topk(net, source, layer, topk, [fmap], batch_size=batch_size)
             [fmap] if it.image != n and it.value > 0][:others]
    tiles += [framed(resize_uint8(symmetric_uint8(it.proj, DISPLAY_PERCENTILE), side), 3, 255)
              for it in items]
    return grid(tiles, 3, pad=2, bg=255), side


def box_area_shares(source) -> np.ndarray:
    """Each image's object box as a share of the net's view (the box clipped to the view,
    as :class:`~zfraw.viz.source.ImageSource` keeps it); nan where an image has no box, and
    for every image of a dataset without boxes."""
    if source.boxes is None:
        return np.full(len(source), np.nan)
    b = np.asarray(source.boxes, np.float64)
    share = (np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
             / source.crop ** 2)
    share[b[:, 0] < 0] = np.nan
    return share


def class_scores(net, source, batch_size):
    """(p(label), top-1 class) of each unmodified image of source."""
    features = probs_and_features(net, [], batch_size)
    p_true, top1 = [], []
    for start, x in source.batches(batch_size):
        probs, _ = features(x)
        labels = source.labels[start:start + len(x)]
        p_true.append(probs[np.arange(len(x)), labels])
        top1.append(probs.argmax(axis=1))
    return np.concatenate(p_true), np.concatenate(top1)


def occlusion_picks(labels, box_share, n: int, min_prob: float, max_box: float, p_true=None,
                    top1=None):
    """Fig. 7's images by rule: the first ``n`` images, in order, whose top-1 class is their
    label with p(label) >= ``min_prob`` and whose box covers at most ``max_box`` of the view
    (``box_share``, nan without a box; where no image has one, the box condition is left
    out); without scores (``p_true`` None: no classifier) the box condition alone. Returns
    (picked, fallback): where fewer than n meet the rule, ``fallback`` fills up to n with the
    other images, those whose box is within the bound first, each group by decreasing
    p(label) (in order without scores)."""
    count = len(labels)
    if np.all(np.isnan(box_share)):
        small = np.ones(count, bool)
    else:
        small = np.nan_to_num(box_share, nan=np.inf) <= max_box
    meets = small.copy()
    if p_true is not None:
        meets &= (np.asarray(top1) == np.asarray(labels)) & (np.asarray(p_true) >= min_prob)
    picked = np.flatnonzero(meets)[:n]
    rest = np.setdiff1d(np.arange(count), picked)
    p = np.zeros(len(rest)) if p_true is None else np.asarray(p_true)[rest]
    order = np.lexsort((rest, -p, ~small[rest]))   # the last key sorts first
    return picked, rest[order][:max(0, n - len(picked))]


def stats_images(source, validation, n: int, max_box: float):
    """The occlusion statistic's images: the first ``n`` validation images in the dataset's
    order whose box covers at most ``max_box`` of the view, looked for in ``source`` (the
    report's first --limit images) and, where too few are there, in ever longer runs of the
    validation set from its start (``validation(count)``, None: ``source`` only).
    Returns (the source they index, their indices, how many images were looked at)."""
    src, asked = source, max(len(source), 1)
    while True:
        idx = np.flatnonzero(np.nan_to_num(box_area_shares(src), nan=np.inf) <= max_box)
        if len(idx) >= n or validation is None or len(src) < asked:
            break
        asked *= 2
        src = validation(asked)
    idx = idx[:n]
    searched = int(idx[-1]) + 1 if n and len(idx) == n else len(src)
    return src, idx, searched


def figure_rule(truth, n, min_prob, max_box, crop, boxes: bool) -> str:
    """Fig. 7's picking rule in words."""
    box = (f"whose object box covers at most {max_box:g} of the net's {crop}x{crop} view"
           if boxes else "(the dataset has no object boxes: no box condition)")
    if truth is None:
        return f"the first {n} validation images, in the dataset's order, {box}"
    what = ("that the net classifies correctly (top-1 = the true class) with p(true class)"
            if truth == TRUE else f"whose top-1 class is {truth}, with p")
    return f"the first {n} validation images, in the dataset's order, {what} >= " \
           f"{min_prob:g} and {box}"


def section_occlusion(page, out, net, source, layer, truth=TRUE, topk=None, *, figures, stats,
                      size=None, stride=None, stats_stride=None, batch_size, min_prob=0.5,
                      max_box=0.5, validation=None, record=None):
    """Fig. 7 for ``figures`` images picked by rule (:func:`occlusion_picks`: correctly
    classified with p(true) >= ``min_prob``, box within ``max_box`` of the view): squares of
    side ``size`` (default crop/4) every ``stride`` pixels (crop/8) over the image, the total
    activation of ``layer``'s strongest map and the probability of ``truth``; ``topk``: the
    top-9 pass's ({layer: TopK}), else a pass of its own. Then the drop's share inside the
    object's box over the first ``stats`` validation images whose box is within ``max_box``
    (:func:`stats_images`, searching ``validation`` beyond ``source``; ``stats_stride``,
    default ``stride``; 0: none), also written to occlusion_stats.json with ``record``'s
    fields. With ``truth`` None (no classifier): the activation maps and projections only."""
    page.heading("Occlusion sensitivity (Fig. 7)")
    if not present(net, [layer]):
        page.text(f"No layer {layer!r} in this net.")
        return
    scores = truth is not None
    if not scores:
        page.text(no_classifier(net, "occlusion's class probabilities, the most probable class "
                                "(Fig. 7 (d), (e)) and the in-box share of the probability "
                                "drop are"))
    forward = probs_and_map(net, layer, batch_size, probs=scores)
    size = size or max(2, source.crop // 4)
    stride = stride or max(1, source.crop // 8)
    has_box = source.boxes is not None
    if figures:
        occlusion_figures(page, out, net, source, layer, truth, topk, forward, figures, size,
                          stride, batch_size, min_prob, max_box)
    if has_box and stats and scores:
        occlusion_statistic(page, out, net, source, layer, truth, forward, stats, size,
                            stats_stride or stride, batch_size, max_box, validation, record)


def occlusion_figures(page, out, net, source, layer, truth, topk, forward, figures, size,
                      stride, batch_size, min_prob, max_box):
    """Fig. 7's figures, ``figures`` of them, for the images :func:`occlusion_picks` gives."""
    scores = truth is not None
    p_true, top1 = class_scores(net, source, batch_size) if scores else (None, None)
    shares = box_area_shares(source)
    picked, fallback = occlusion_picks(source.labels, shares, figures, min_prob, max_box,
                                       p_true, top1)
    rule = figure_rule(truth, figures, min_prob, max_box, source.crop,
                       not np.all(np.isnan(shares)))
    text = (f"The images, by a rule, not by hand: {rule}, among the report's first "
            f"{len(source)} validation images (--occlusion-figures, --occlusion-min-prob, "
            f"--occlusion-max-box): images {', '.join(map(str, picked)) or 'none'}.")
    if len(fallback):
        text += ((f" Only {len(picked)} meet it: the other" if len(picked) else
                  " None meets it: the") + f" {len(fallback)} figure(s) show the "
                 f"images with the highest p({'true class' if truth == TRUE else 'top-1'}) "
                 f"among the rest (box within the bound first), images "
                 f"{', '.join(map(str, fallback))}, marked 'does not meet the rule'.")
    page.text(text)
    found = (topk or {}).get(layer)
    if found is None:
        found = collect_topk(net, source, [layer], k=10, batch_size=batch_size,
                             distinct=True, desc="")[layer]
    for k, n in enumerate(list(picked) + list(fallback)):
        n = int(n)
        image = source.inputs([n])[0]
        m = occlusion_sweep(forward, image, int(source.labels[n]), size, stride,
                            batch_size, occluded=incremental(net, layer, image, scores))
        box = tuple(source.boxes[n]) if source.boxes is not None and source.boxes[n, 0] >= 0 \
            else None
        img = scale_to_uint8(source.pixels([n])[0], 0, 255)
        proj, side = occlusion_projections(net, source, layer, n, m.fmap, found, batch_size)
        name = f"validation image {n}" + ("" if source.files is None else
                                          f" ({source.files[n]})")
        meets = k < len(picked)
        title = name + ("" if meets else ": does not meet the rule")
        page.image(plots.occlusion_figure(out / f"occlusion_{k}.png", img, m, source.names,
                                          int(source.labels[n]), box, proj, side, title),
                   f"{title}, as the paper's Fig. 7 columns: (a) the image (white: the "
                   f"object's box), (b) total activation of {layer}'s strongest map in the "
                   f"unoccluded image (map {m.fmap}) with a grey {size}x{size} square (stride "
                   f"{stride}) centred at each place, (c) that map's strongest activation "
                   f"projected into this image (black frame, first) and its projections in up "
                   f"to 8 other validation images (the top-9 pass's)"
                   + (f", (d) the probability of {truth}, (e) the most probable class" if scores
                      else "")
                   + f". Image and tiles drawn at least {MIN_TILE} px wide (nearest "
                   "neighbour).")


def occlusion_statistic(page, out, net, source, layer, truth, forward, n_images, size, stride,
                        batch_size, max_box, validation, record):
    """The share of the drop inside the object's box over the first ``n_images`` validation
    images whose box covers at most ``max_box`` of the view, on the page and in
    occlusion_stats.json."""
    page.heading("Share of the drop inside the object's box (zfraw's addition, not in the "
                 "paper)", 3)
    src, idx, searched = stats_images(source, validation, n_images, max_box)
    rows, records = box_share_stats(forward, src, idx, size, stride, batch_size, net, layer)
    share = np.array([r["share"] for r in records], np.float64)
    centre = np.array([r["centre_share"] for r in records], np.float64)
    dropped = np.isfinite(share)
    crop = source.crop
    rule = (f"the first {n_images} validation images in the dataset's order (for Tiny "
            f"ImageNet the order of val/val_annotations.txt) whose object box covers at most "
            f"{max_box:g} of the net's {crop}x{crop} view (--occlusion-stats, "
            f"--occlusion-max-box)")
    summary = {"images": len(idx), "images_with_a_drop": int(dropped.sum()),
               "mean_share": float(np.mean(share[dropped])) if dropped.any() else None,
               "median_share": float(np.median(share[dropped])) if dropped.any() else None,
               "mean_centre_share": float(np.mean(centre[dropped])) if dropped.any() else None,
               "median_centre_share": float(np.median(centre[dropped])) if dropped.any()
               else None,
               "mean_centre_share_all": float(np.mean(centre)) if len(centre) else None}
    short = f" (only {len(idx)} such images in the {searched} searched)" \
        if len(idx) < n_images else ""
    head = (f"Images: {rule}{short}: {len(idx)} images, validation images 0-{searched - 1} "
            f"searched; occluder {size}x{size}, stride {stride}; {layer}.")
    if dropped.any():
        page.text(f"{head} Share of the drop in the probability of {truth} from squares "
                  f"centred inside the object's box, over the {int(dropped.sum())} of them "
                  f"where some square lowered it: mean {summary['mean_share']:.3f}, median "
                  f"{summary['median_share']:.3f}. Share of square centres inside the box (no "
                  f"localisation), over the same images: mean "
                  f"{summary['mean_centre_share']:.3f}, median "
                  f"{summary['median_centre_share']:.3f}.")
    else:
        page.text(f"{head} No square lowered the probability of {truth} in any of them.")
    fields = ["index", "file", "class", "p_true", "top1", "share", "centre_share"]
    path = write_record(out / "occlusion_stats.json", dict(
        record or {}, what=f"share of the drop in p({'true class' if truth == TRUE else truth})"
        " under occlusion from squares "
        "centred inside the object's box, beside the share of square centres inside it",
        rule=rule, requested=n_images, max_box_share=max_box, searched=searched,
        layer=layer, occluder_size=size, stride=stride, **summary, columns=fields,
        rows=[[r[f] for f in fields] for r in records]))
    page.text(f"These numbers, with every image's, are in {path.name}.")
    page.table(["image", "class" if truth == TRUE else "top-1 class",
                "p(true)" if truth == TRUE else "p(top-1)",
                "drop share in box", "centre share in box"], rows[:20])


def incremental(net, layer: str, image, scores: bool = True):
    """The incremental sweep's forward (zfraw/viz/incremental.py: each occluded copy recomputes
    only what its square changes; equal to the full forward) on the CPU; None on the GPU, where
    the plain sweep's batched full forwards are used. ``scores`` False (a net without a
    classifier): its probabilities, a softmax of whatever the net ends in, are dropped."""
    if net.device != "cpu":
        return None
    occluded = IncrementalOcclusion(net, image, layer)
    if scores:
        return occluded
    return lambda boxes, fill=0.0: (None, occluded(boxes, fill)[1])


def box_share_stats(forward, source, idx, size, stride, batch_size, net=None, layer=None):
    """Per image of ``idx`` (images of source with a box): the share of the drop in box and
    the share of centres in box (swept incrementally when ``net`` and ``layer`` are given).
    Returns (table rows, records: {index, file, class, p_true, top1, share (nan: no drop),
    centre_share})."""
    rows, records = [], []
    for k, n in enumerate(int(i) for i in idx):
        if k % 10 == 0:
            log(f"occlusion box statistic: {k}/{len(idx)}")
        image = source.inputs([n])[0]
        m = occlusion_sweep(forward, image, int(source.labels[n]), size, stride, batch_size,
                            occluded=None if net is None else incremental(net, layer, image))
        share, area = drop_share_in_box(m, tuple(source.boxes[n]))
        name = source.names[source.labels[n]]
        rows.append([n, name, m.base_prob, share, area])
        records.append({"index": n, "file": None if source.files is None else source.files[n],
                        "class": name, "p_true": m.base_prob,
                        "top1": source.names[m.base_class], "share": share,
                        "centre_share": area})
    return rows, records


def part_groups(source, n_images: int | None, n_classes: int | None):
    """[(class, image indices, part names)] for up to ``n_classes`` classes (None: all): the
    parts of the class's first image with the most parts, and the first ``n_images`` images
    (None: all) of the class that have every one of them (at least 2), in class order."""
    groups = []
    classes = np.unique(source.labels)
    # Classes with the most parts first (the paper occludes three), then in class order.
    most = {int(c): max((len(source.parts[i]) for i in source.class_indices(c)), default=0)
            for c in classes}
    for c in sorted(classes, key=lambda c: -most[int(c)]):
        idx = [int(i) for i in source.class_indices(c) if source.parts[i]]
        if len(idx) < 2:
            continue
        names = list(source.parts[max(idx, key=lambda i: len(source.parts[i]))])
        idx = [i for i in idx if all(p in source.parts[i] for p in names)][:n_images]
        if len(idx) >= 2:
            groups.append((int(c), idx, names))
        if n_classes is not None and len(groups) == n_classes:
            break
    return groups


def object_regions(source, idx):
    """The objects' boxes (y0, x0, y1, x1) of images idx, the whole image where unknown."""
    c = source.crop
    if source.boxes is None:
        return [(0, 0, c, c)] * len(idx)
    return [tuple(int(v) for v in source.boxes[i]) if source.boxes[i, 0] >= 0 and
            np.all(source.boxes[i, 2:] > source.boxes[i, :2]) else (0, 0, c, c) for i in idx]


RANDOM = "random (inside the object)"
# The paper's Table 1: mean and standard deviation of the measure at layer 5 and layer 7.
PAPER_TABLE1 = {"right eye": ((0.067, 0.007), (0.069, 0.015)),
                "left eye": ((0.069, 0.007), (0.068, 0.013)),
                "nose": ((0.079, 0.017), (0.069, 0.011)),
                RANDOM: ((0.107, 0.017), (0.073, 0.014))}
PAPER_LAYERS = ("layer 5", "layer 7")


def mean_std(d) -> str:
    return f"{np.mean(d):.3f} \u00b1 {np.std(d):.3f}"


def distance_stats(d) -> dict:
    """{mean, std, pairs} of pair distances."""
    d = np.asarray(d, np.float64)
    return {"mean": float(d.mean()), "std": float(d.std()), "pairs": int(d.size)}


def paper_cell(part: str, k: int) -> str:
    """The paper's Table 1 entry for ``part`` at its k-th layer (5, then 7), or a dash."""
    if part not in PAPER_TABLE1 or k >= len(PAPER_LAYERS):
        return "\u2013"
    m, s = PAPER_TABLE1[part][k]
    return f"{m:.3f} \u00b1 {s:.3f}"


def section_correspondence(page, out, net, source, layers, parts_file=None, load_parts=None, *,
                           n_images=None, n_classes=None, draws, seed, batch_size, record=None):
    """Fig. 8 and Table 1 at ``layers``: the same part occluded in up to ``n_images`` images of
    each of ``n_classes`` classes (None: every image and class of a parts file; 5 images of 2
    classes of the synthetic set's), beside ``draws`` random occlusions per part; the parts are
    ``source``'s own (the synthetic set's) or, with ``parts_file``, those of the images it names
    (``load_parts(parts_file)``). Table 1 pools the pairs of every class (pairs within a class),
    beside the paper's numbers; it is also written to correspondence.json with ``record``'s
    fields."""
    page.heading("Correspondence (Fig. 8, Table 1)")
    notes = []       # the parts file's boxes that were clipped or left out, one line a kind
    if parts_file:
        source = load_parts(parts_file, log=lambda line: (log(line), notes.append(line)))
        where = f"the images and part boxes of {Path(parts_file).name}"
        for line in notes:
            page.text(line)
    elif source.parts is not None:
        where = ("the built-in synthetic set's parts (zfraw.data.synthetic.PARTS: fixed places "
                 "in each shape's own frame, e.g. a square's corner, a star's tip, a ring's "
                 "hole), in the first validation images of each class")
        n_images = 5 if n_images is None else n_images
        n_classes = 2 if n_classes is None else n_classes
    else:
        page.text("No part boxes: the paper occludes the same object parts (left eye, right "
                  "eye, nose) in 5 images of a class. Give --parts FILE, a JSON object "
                  "{image file: {part name: [x0, y0, x1, y1]}} (files as the dataset lists "
                  "them, boxes in the original image's pixels, an optional \"object\" box for "
                  "the random occlusions; see the README).")
        return
    groups = part_groups(source, n_images, n_classes)
    if not groups:
        page.text(f"No class with at least 2 images sharing their parts in {where}"
                  + (" (after the boxes left out above)." if notes else "."))
        return
    annotated = sum(1 for p in source.parts if p)
    used = sum(len(idx) for _, idx, _ in groups)
    classes = len({int(c) for c in source.labels[[i for i, p in enumerate(source.parts) if p]]})
    page.text(f"As the paper's Sec. 5: occlude the same part in the images of a class "
              f"({where}); eps_i = the change "
              "of image i's feature vector at a layer; for each pair of images, the Hamming "
              "distance between sign(eps_i) and sign(eps_j) as a fraction of the layer's "
              "units; tables: its mean +- standard deviation over the pairs (the paper's Delta "
              "is the sum over ordered pairs, n(n-1) times the mean); lower = more "
              "consistent. "
              f"Random: squares of the same sizes at random places inside each image's object "
              f"box ({draws} draws per part, all pairs pooled). Occluder: grey "
              f"(the mean). Used: {used} of the {annotated} images with parts, in "
              f"{len(groups)} of their {classes} classes (--correspondence-images "
              f"{'all' if n_images is None else n_images}, --correspondence-classes "
              f"{'all' if n_classes is None else n_classes}; a class's images need every part "
              "of its image with the most parts).")
    feats = probs_and_features(net, layers, batch_size, probs=False)
    pooled = {}                  # part -> layer -> [pair distances of each class]
    per_class, shown = [], []    # each class's numbers, and its heading, figure and table
    for c, idx, names in groups:
        x = source.inputs(idx)
        regions = object_regions(source, idx)
        rows, randoms, examples, stats = [], {layer: [] for layer in layers}, [], {}
        for k, part in enumerate(names):
            boxes = [source.parts[i][part] for i in idx]
            res = corr.correspondence(feats, x, boxes, layers, n_random=draws, seed=seed + k,
                                      regions=regions)
            rows.append([part] + [mean_std(res[ly]["part_distances"]) for ly in layers])
            stats[part] = {ly: distance_stats(res[ly]["part_distances"]) for ly in layers}
            for ly in layers:
                pooled.setdefault(part, {}).setdefault(ly, []).append(
                    res[ly]["part_distances"])
                if res[ly]["random_distances"] is not None:
                    randoms[ly].append(res[ly]["random_distances"])
            if res[layers[0]]["random"] and len(examples) < 2:
                examples.append(res[layers[0]]["random"])
        if draws:
            rows.append([RANDOM] + [mean_std(np.concatenate(randoms[ly])) for ly in layers])
            stats[RANDOM] = {ly: distance_stats(np.concatenate(randoms[ly])) for ly in layers}
            for ly in layers:
                pooled.setdefault(RANDOM, {}).setdefault(ly, []).extend(randoms[ly])
        name = source.names[c]
        per_class.append({"class": name, "images": [source.files[i] if source.files else i
                                                    for i in idx],
                          "parts": stats})
        figure = save_png(correspondence_figure(source, idx, names, examples),
                          out / f"correspondence_{c}.png")
        shown.append((f"{name}: {len(idx)} images", figure,
                      f"Fig. 8 for {name}: rows = the {len(idx)} images; columns = the "
                      f"original, each part occluded ({', '.join(names)}), then random "
                      "occlusions inside the object's box (white, in the first column).", rows))
    table = {part: {ly: distance_stats(np.concatenate(d)) for ly, d in by_layer.items()}
             for part, by_layer in pooled.items()}
    paper = any(part in PAPER_TABLE1 and part != RANDOM for part in table)
    page.heading(f"Table 1: {len(groups)} classes together", 3)
    header = ["occluded part"]
    for k, ly in enumerate(layers):
        header.append(f"{ly}: mean \u00b1 std (pairs)")
        if paper and k < len(PAPER_LAYERS):
            header.append(f"the paper, {PAPER_LAYERS[k]}")
    rows = []
    for part, by_layer in table.items():
        row = [part]
        for k, ly in enumerate(layers):
            d = by_layer[ly]
            row.append(f"{d['mean']:.3f} \u00b1 {d['std']:.3f} ({d['pairs']})")
            if paper and k < len(PAPER_LAYERS):
                row.append(paper_cell(part, k))
        rows.append(row)
    page.text(f"The {len(groups)} classes below together: for each part, the pairs of images "
              f"of each class (n(n-1)/2 for n images), all classes' pooled; mean \u00b1 "
              f"standard deviation over the pairs, their number in brackets"
              + (f". Beside them the paper's Table 1 (5 dog faces; its layer 5 and layer 7, "
                 f"here {' and '.join(layers[:2])})." if paper else "."))
    page.table(header, rows)
    path = write_record(out / "correspondence.json", dict(
        record or {}, what="normalised Hamming distance between the signs of the feature "
        "changes when the same part is occluded, over pairs of images of a class: mean, "
        "standard deviation and number of pairs", parts=where, layers=list(layers),
        random_draws=draws, seed=seed, images=used, annotated_images=annotated,
        table=table,
        paper={part: {ly: {"mean": v[0], "std": v[1]} for ly, v in zip(PAPER_LAYERS, vals)}
               for part, vals in PAPER_TABLE1.items()},
        classes=per_class))
    page.text(f"Table 1, per class and together, is in {path.name}.")
    for heading, figure, caption, rows in shown:
        page.heading(heading, 3)
        page.image(figure, caption)
        page.table(["occluded part"] + [f"mean feature sign change, {ly}" for ly in layers],
                   rows)


def correspondence_figure(source, idx, names, examples):
    """Fig. 8: one row per image: the original (object box in white), each part occluded,
    then the random examples. -> (H, W, 3) uint8."""
    x = source.inputs(idx)
    zoom = tile_zoom(source.crop, 72)
    cols = [("original", None)] + [(p, [source.parts[i][p] for i in idx]) for p in names] \
        + [(f"random {k + 1}", ex) for k, ex in enumerate(examples)]
    regions = object_regions(source, idx)
    rows = []
    for r, i in enumerate(idx):
        tiles = []
        for label, boxes in cols:
            img = x[r] if boxes is None else occlude(x[r], [boxes[r]])[0]
            tile = scale_to_uint8(source.to_pixels(img[None])[0], 0, 255)
            if boxes is None:
                y0, x0, y1, x1 = regions[r]
                tile = tile.copy()
                tile[y0:y1, [x0, max(x1 - 1, x0)]] = 255
                tile[[y0, max(y1 - 1, y0)], x0:x1] = 255
            tiles.append(upscale(tile, zoom))
        rows.append(hstack(tiles, pad=4))
    head = hstack([text_band(label, source.crop * zoom, 13) for label, _ in cols], pad=4)
    return vstack([head] + rows, pad=4)


