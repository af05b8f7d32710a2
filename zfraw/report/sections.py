"""The report's sections, in page order, each one of the paper's figures (or zfraw's addition
to it), drawn from plain values: the net, its images, the layers to read and the numbers that
the options set. Where the subjects differ (a run or an imported net), the difference is in
those values (:mod:`zfraw.report.subject`), not in the sections."""
from __future__ import annotations

import sys
import time

import numpy as np

from ..backend import to_host
from ..viz import correspondence as corr
from ..viz import plots
from ..viz.evolution import evolution_by_layer, evolution_figure
from ..viz.filters import diagnostics, filter_grid
from ..viz.forward import probs_and_features, probs_and_map
from ..viz.images import (DISPLAY_PERCENTILE, framed, grid, hstack, resize_uint8, save_png,
                          scale_to_uint8, symmetric_uint8, text_band, tile_zoom, titled, upscale,
                          vstack)
from ..viz.incremental import IncrementalOcclusion
from ..viz.invariance import TRANSFORMS, invariance_curves
from ..viz.occlusion import drop_share_in_box, occlude, occlusion_sweep
from ..viz.projection import forward_to, project_strongest
from ..viz.top9 import collect_topk, layer_figure, map_blocks, project_topk

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
              "maps at radial frequency >= 0.75. Shift sensitivity: relative change of conv2's "
              "position-averaged features when the image moves by s pixels diagonally "
              "(s below conv2's stride; an alias-free layer would barely change)."
              + ("" if layers == ("conv1", "relu1", "conv2") else
                 f" Here conv1 is {layers[0]} (rectified: {layers[1]}) and conv2 is "
                 f"{layers[2]}."))
    rows = []
    for name, d in runs.items():
        sens = ", ".join(f"{s}px: {v:.3f}" for s, v in zip(d["shifts"], d["shift_sensitivity"]))
        rows.append([name, d["filters"], len(d["dead"]), len(d["low_dominated"]),
                     len(d["high_dominated"]), d["mean_mid_share"], d["conv2_nyquist_share"],
                     sens])
    page.table(["net", "conv1 filters", "dead", "low-dominated", "high-dominated",
                "mean mid-band share", "conv2 Nyquist share", "conv2 shift sensitivity"], rows)
    bars = {name: {"dead": len(d["dead"]) / d["filters"],
                   "low-dom.": len(d["low_dominated"]) / d["filters"],
                   "high-dom.": len(d["high_dominated"]) / d["filters"],
                   "mid share": d["mean_mid_share"], "conv2 Nyquist": d["conv2_nyquist_share"],
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
        fig = layer_figure([map_blocks(items[m]) for m in shown])
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
    page.text(f"For each saved epoch ({', '.join(map(str, epochs))}; the paper: 1, 2, 5, 10, 20, "
              f"30, 40, 64), the strongest activation of each map over {len(train)} training "
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


def section_invariance(page, out, net, source, layers, truth=TRUE, *, n_images, batch_size):
    """Fig. 5: feature distances at ``layers`` and the probability of ``truth`` as ``n_images``
    images (one per class) are moved, scaled and rotated; with ``truth`` None (no classifier)
    the distances only."""
    page.heading("Invariance to vertical translation, scale and rotation (Fig. 5)")
    scores = truth is not None
    if not scores:
        page.text(no_classifier(net, "the probability curves (the paper's last column) are"))
    idx = first_per_class(source, n_images, fill=truth != TRUE)
    x, labels = source.inputs(idx), source.labels[idx]
    crop = source.crop
    step = max(1, crop // 32)
    amounts = {"translate": np.arange(-(crop // 4), crop // 4 + 1, step),
               "scale": np.round(np.linspace(0.6, 1.8, 13), 2),
               "rotate": np.arange(0, 361, 15)}
    feats = probs_and_features(net, layers, batch_size, probs=scores)
    curves = {k: invariance_curves(feats, x, labels, k, a, layers) for k, a in amounts.items()}
    zoom = tile_zoom(crop, 40)
    strips = {k: invariance_strip(source, x, k, a, zoom) for k, a in amounts.items()}
    names = [source.names[c] for c in labels]
    page.image(plots.invariance_figure(out / "invariance.png", curves, layers,
                                       "true class" if truth == TRUE else "top-1 class",
                                       strips, names),
               f"Rows, as the paper's: (a) vertical translation (pixels, + moves the image "
               f"down), (b) scale (ratio), (c) rotation (degrees), each about the image centre "
               f"with the uncovered border set to the mean. Columns: 1 the {len(idx)} example "
               f"images undergoing the transform (one per row, coloured as its lines; a few of "
               f"the amounts, labelled on top), 2-{len(layers) + 1}: Euclidean distance between "
               f"the feature vectors of the original and the transformed image at "
               f"{' and '.join(layers)} (the paper: layers 1 and 7)"
               + (f", {len(layers) + 2}: the probability of {truth}." if scores else "."))


def first_per_class(source, n, fill: bool = False):
    """Up to n image indices, one per class in turn, so curves cover different classes; with
    ``fill``, topped up with the first other images where there are fewer classes than n (an
    imported net's predictions may fall in one class)."""
    picks = []
    for c in np.unique(source.labels):
        picks.append(source.class_indices(c)[0])
    picks = sorted(picks)[:n]
    if fill:
        picks = sorted(picks + [i for i in range(len(source)) if i not in picks][:n - len(picks)])
    return np.array(picks)


def occlusion_projections(net, source, layer, n, fmap, topk, batch_size):
    """Fig. 7 (c): map ``fmap``'s strongest activation in image n projected into the whole
    image (black frame), beside its projections in other images (the top-9 pass's, cropped
    to the receptive field, this image left out). -> (H, W, 3) uint8."""
    proj, _, _ = project_strongest(net, source.inputs([n]), layer, fmap)
    big = framed(upscale(symmetric_uint8(proj[0], DISPLAY_PERCENTILE),
                         tile_zoom(source.crop, 150)), 4, 0)
    items = [it for it in project_topk(net, source, layer, topk, [fmap], batch_size=batch_size)
             [fmap] if it.image != n and it.value > 0][:9]
    if not items:
        return big
    side = max(16, (big.shape[0] - 4) // 3)
    tiles = [resize_uint8(symmetric_uint8(it.proj, DISPLAY_PERCENTILE), side) for it in items]
    return hstack([big, grid(tiles, 3, pad=2, bg=255)], pad=10)


def section_occlusion(page, out, net, source, layer, truth=TRUE, topk=None, *, figures, stats,
                      size=None, stride=None, stats_stride=None, batch_size):
    """Fig. 7 for the first ``figures`` images: squares of side ``size`` (default crop/4) every
    ``stride`` pixels (crop/8) over the image, the total activation of ``layer``'s strongest map
    and the probability of ``truth``; ``topk``: the top-9 pass's ({layer: TopK}), else a pass
    of its own. Then the drop's share inside the object's box over ``stats`` images
    (``stats_stride``, default ``stride``; 0: none). With ``truth`` None (no classifier): the
    activation maps and projections only."""
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
    found = (topk or {}).get(layer)
    if found is None and figures:
        found = collect_topk(net, source, [layer], k=10, batch_size=batch_size,
                            distinct=True, desc="")[layer]
    for n in range(min(figures, len(source))):
        image = source.inputs([n])[0]
        m = occlusion_sweep(forward, image, int(source.labels[n]), size, stride,
                            batch_size, occluded=incremental(net, layer, image, scores))
        box = tuple(source.boxes[n]) if has_box and source.boxes[n, 0] >= 0 else None
        img = scale_to_uint8(source.pixels([n])[0], 0, 255)
        proj = occlusion_projections(net, source, layer, n, m.fmap, found, batch_size)
        page.image(plots.occlusion_figure(out / f"occlusion_{n}.png", img, m, source.names,
                                          int(source.labels[n]), box, proj),
                   f"image {n}, as the paper's Fig. 7 columns: (a) the image (white: the "
                   f"object's box), (b) total activation of {layer}'s strongest map in the "
                   f"unoccluded image (map {m.fmap}) with a grey {size}x{size} square (stride "
                   f"{stride}) centred at each place, (c) that map's strongest activation "
                   f"projected into this image (framed) and its projections in other validation "
                   f"images (the top-9 pass's)"
                   + (f", (d) the probability of {truth}, (e) the most probable class" if scores
                      else ""))
    if has_box and stats and scores:
        page.heading("Share of the drop inside the object's box (zfraw's addition, not in the "
                     "paper)", 3)
        rows, shares, areas = box_share_stats(forward, source, stats, size,
                                              stats_stride or stride, batch_size, net, layer)
        if len(shares):
            page.text(f"Share of the drop in the probability of {truth} from squares centred "
                      f"inside the object's box, over {len(shares)} validation images with a "
                      f"box and a drop: mean {np.mean(shares):.3f} (median "
                      f"{np.median(shares):.3f}); the share of square centres inside the box "
                      f"(no localisation) averages {np.mean(areas):.3f}.")
        else:
            page.text(f"Share of the drop in the probability of {truth} inside the object's "
                      f"box: no squares lowered it in any of the {len(rows)} images with a box.")
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


def box_share_stats(forward, source, n_images, size, stride, batch_size, net=None, layer=None):
    """Per-image (share of the drop in box, share of centres in box) over the first n images
    with a box (swept incrementally when ``net`` and ``layer`` are given). Returns (table rows,
    shares, area shares) over images with any drop."""
    rows, shares, areas = [], [], []
    idx = [i for i in range(len(source)) if source.boxes[i, 0] >= 0][:n_images]
    for k, n in enumerate(idx):
        if k % 10 == 0:
            log(f"occlusion box statistic: {k}/{len(idx)}")
        image = source.inputs([n])[0]
        m = occlusion_sweep(forward, image, int(source.labels[n]), size, stride, batch_size,
                            occluded=None if net is None else incremental(net, layer, image))
        share, area = drop_share_in_box(m, tuple(source.boxes[n]))
        rows.append([n, source.names[source.labels[n]], m.base_prob, share, area])
        if np.isfinite(share):
            shares.append(share)
            areas.append(area)
    return rows, np.array(shares), np.array(areas)


def part_groups(source, n_images: int, n_classes: int):
    """[(class, image indices, part names)] for up to ``n_classes`` classes: the first
    ``n_images`` images of each class that have every part of the class's first such image
    (at least 2), in class order."""
    groups = []
    classes = np.unique(source.labels)
    # Classes with the most parts first (the paper occludes three), then in class order.
    most = {int(c): max((len(source.parts[i]) for i in source.class_indices(c)), default=0)
            for c in classes}
    for c in sorted(classes, key=lambda c: -most[int(c)]):
        idx = [int(i) for i in source.class_indices(c) if source.parts[i]]
        if len(idx) < 2:
            continue
        names = list(source.parts[idx[0]])
        idx = [i for i in idx if all(p in source.parts[i] for p in names)][:n_images]
        if len(idx) >= 2:
            groups.append((int(c), idx, names))
        if len(groups) == n_classes:
            break
    return groups


def object_regions(source, idx):
    """The objects' boxes (y0, x0, y1, x1) of images idx, the whole image where unknown."""
    c = source.crop
    if source.boxes is None:
        return [(0, 0, c, c)] * len(idx)
    return [tuple(int(v) for v in source.boxes[i]) if source.boxes[i, 0] >= 0 and
            np.all(source.boxes[i, 2:] > source.boxes[i, :2]) else (0, 0, c, c) for i in idx]


def section_correspondence(page, out, net, source, layers, parts_file=None, load_parts=None, *,
                           n_images, n_classes, draws, seed, batch_size):
    """Fig. 8 and Table 1 at ``layers``: the same part occluded in up to ``n_images`` images of
    each of ``n_classes`` classes, beside ``draws`` random occlusions per part; the parts are
    ``source``'s own (the synthetic set's) or, with ``parts_file``, those of the images it names
    (``load_parts(parts_file)``)."""
    page.heading("Correspondence (Fig. 8, Table 1)")
    notes = []       # the parts file's boxes that were clipped or left out, one line a kind
    if parts_file:
        source = load_parts(parts_file, log=lambda line: (log(line), notes.append(line)))
        where = f"the images and part boxes of {parts_file}"
        for line in notes:
            page.text(line)
    elif source.parts is not None:
        where = ("the built-in synthetic set's parts (zfraw.data.synthetic.PARTS: fixed places "
                 "in each shape's own frame, e.g. a square's corner, a star's tip, a ring's "
                 "hole), in the first validation images of each class")
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
    page.text(f"As the paper's Sec. 5: occlude the same part in up to "
              f"{n_images} images of a class ({where}); eps_i = the change "
              "of image i's feature vector at a layer; for each pair of images, the Hamming "
              "distance between sign(eps_i) and sign(eps_j) as a fraction of the layer's "
              "units. Table: its mean +- standard deviation over the pairs (the paper's Delta "
              "is the sum over ordered pairs, n(n-1) times the mean); lower = more consistent. "
              f"Random: squares of the same sizes at random places inside each image's object "
              f"box ({draws} draws per part, all pairs pooled). Occluder: grey "
              "(the mean).")
    feats = probs_and_features(net, layers, batch_size, probs=False)
    for c, idx, names in groups:
        x = source.inputs(idx)
        regions = object_regions(source, idx)
        rows, randoms, examples = [], {layer: [] for layer in layers}, []
        for k, part in enumerate(names):
            boxes = [source.parts[i][part] for i in idx]
            res = corr.correspondence(feats, x, boxes, layers, n_random=draws, seed=seed + k,
                                      regions=regions)
            rows.append([part] + [f"{res[ly]['part_mean']:.3f} \u00b1 {res[ly]['part_std']:.3f}"
                                  for ly in layers])
            for ly in layers:
                if res[ly]["random_distances"] is not None:
                    randoms[ly].append(res[ly]["random_distances"])
            if res[layers[0]]["random"] and len(examples) < 2:
                examples.append(res[layers[0]]["random"])
        if draws:
            pooled = {ly: np.concatenate(randoms[ly]) for ly in layers}
            rows.append(["random (inside the object)"] +
                        [f"{pooled[ly].mean():.3f} \u00b1 {pooled[ly].std():.3f}"
                         for ly in layers])
        name = source.names[c]
        page.heading(f"{name}: {len(idx)} images", 3)
        page.image(save_png(correspondence_figure(source, idx, names, examples),
                            out / f"correspondence_{c}.png"),
                   f"Fig. 8 for {name}: rows = the {len(idx)} images; columns = the original, "
                   f"each part occluded ({', '.join(names)}), then random occlusions inside "
                   "the object's box (white, in the first column).")
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


