"""The visual report of a training run or of an imported net:

    python -m zfraw.report --run DIR [--data SPEC]
    python -m zfraw.report --model MODEL.onnx --data SPEC [--preprocess PRESET] [--labels FILE]

Writes ``DIR/report/index.html`` (or ``MODEL's folder/report-<stem>/index.html``) with PNG
figures beside it, each section laid out as the paper's figure: training curves, the
architecture summary, first-layer filters (Fig. 6; two runs side by side with --compare) and
their diagnostics (zfraw's addition), projections with the three rules, top-9 projections and
patches of randomly drawn maps over distinct images (Fig. 2), feature evolution over training
images (Fig. 4), invariance to vertical translation, scale and rotation (Fig. 5), occlusion
maps with the map's projections (Fig. 7) and the in-box share of the probability drop (zfraw's
addition), and the correspondence measure on object parts (Fig. 8, Table 1). Every section
reads the validation images of the run's dataset (or ``--data``) through the net's input
convention (:class:`zfraw.nets.inputs.InputSpec`): for a run, centre crops minus its mean image
times its input scale; for a model, a ``--preprocess`` preset or the one its file records. A
model's report has no training or evolution sections, and picks its layers by type (the ReLU
after each conv, ...), since an imported graph's layer names are its own.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import host
from .backend import to_host
from .viz import correspondence as corr
from .viz import plots
from .viz.evolution import evolution_by_layer, evolution_figure
from .viz.forward import probs_and_features, probs_and_map
from .viz.filters import diagnostics, filter_grid
from .viz.html import HtmlPage
from .viz.images import (DISPLAY_PERCENTILE, framed, grid, hstack, resize_uint8, save_png,
                         scale_to_uint8, symmetric_uint8, text_band, tile_zoom, titled, upscale,
                         vstack)
from .viz.invariance import TRANSFORMS, invariance_curves
from .viz.incremental import IncrementalOcclusion
from .viz.occlusion import drop_share_in_box, occlude, occlusion_sweep
from .viz.projection import forward_to, project_strongest
from .data import DataError
from .layers import Conv2d, Linear, ReLU
from .nets.inputs import PRESETS, InputSpec
from .rundir import RunDir
from .viz.datasets import load_model_source, load_part_source, load_source, load_train_source
from .viz.top9 import collect_topk, layer_figure, map_blocks, project_topk


TRUE = "the true class"  # what the label-reading sections measure, unless told otherwise


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def present(net, names):
    """The names that are layers of net, in order."""
    have = {layer.name for layer in net.layers}
    return [n for n in names if n in have]


def conv_relus(net):
    """'reluK' after each 'convK', in order (the conv layers' rectified outputs)."""
    return present(net, [f"relu{layer.name[4:]}" for layer in net.layers
                         if layer.name.startswith("conv")])


def imported_layers(net) -> dict:
    """Layer choices by type for a net whose names are not zfraw's (an imported graph): the
    ReLU after each conv (the conv itself where none follows it before the next conv or fc),
    the last of them for rules and occlusion, the ReLU after the last hidden fc for invariance
    and correspondence, and the first conv, its ReLU and the second conv for the filters'
    diagnostics."""
    layers = net.layers

    def rectified(i):
        for layer in layers[i + 1:]:
            if isinstance(layer, ReLU):
                return layer.name
            if isinstance(layer, (Conv2d, Linear)):
                break
        return layers[i].name

    convs = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2d)]
    fcs = [i for i, layer in enumerate(layers) if isinstance(layer, Linear)]
    if not convs:
        raise ValueError(f"{net.arch} has no convolution; the report is for conv nets")
    relus = [rectified(i) for i in convs]
    fc = rectified(fcs[-2]) if len(fcs) >= 2 else None
    return {"top9": relus, "rules": relus[-1], "occlusion": relus[-1],
            "invariance": list(dict.fromkeys([relus[0], fc or relus[-1]])),
            "correspondence": [relus[-1]] + ([fc] if fc else []),
            "filters": (layers[convs[0]].name, relus[0],
                        layers[convs[1]].name if len(convs) > 1 else None)}


# -- sections --------------------------------------------------------------------------------
def section_training(page, out, run, net):
    page.heading("Training")
    records = run.read_metrics()
    if records:
        page.image(plots.training_curves(records, out / "training.png"),
                   "metrics.jsonl per epoch (loss, top-1/top-5, learning rate, speed)")
        last = records[-1]
        page.table(["field", "last epoch"], [[k, v] for k, v in last.items()])
    else:
        page.text("No metrics.jsonl records in this run.")
    page.heading("Architecture", 3)
    page.pre(net.summary_text())


def renorm_note(config) -> str:
    """How a run's filters were kept in bounds (the paper's Fig. 6 (a) vs (c))."""
    if config is None:
        return "imported net"
    r = config.get("renorm_radius", 0.1)
    return f"filter renormalization to RMS {r:g}" if r else "no filter renormalization"


def random_maps(values, n: int, seed: int, salt: str = "") -> list:
    """n maps drawn at random (seeded by seed and salt, e.g. the layer's name, so layers of
    the same width get different maps) among those whose top activation is positive (a map
    that never fires has nothing to show), sorted; all of them when there are fewer."""
    fired = np.flatnonzero(np.asarray(values)[:, 0] > 0)
    if len(fired) <= n:
        return [int(m) for m in fired]
    rng = np.random.default_rng([seed] + [ord(ch) for ch in salt])
    return sorted(int(m) for m in rng.choice(fired, n, replace=False))


def section_filters(page, out, net, source, args, other=None,
                    layers=("conv1", "relu1", "conv2"), label="this run", config=None):
    page.heading("First-layer filters (Fig. 6 (a)-(c)) and layer-2 projections (Fig. 6 (d), (e))")
    w = to_host(net.layer(layers[0]).params["W"])
    bgr = source.spec.order == "BGR" and w.shape[1] == 3
    mine = filter_grid(w[:, ::-1] if bgr else w)
    me = f"{label}: {net.arch}, {renorm_note(config)}"
    if other is None:
        page.image(save_png(titled(mine, me), out / "conv1.png"),
                   f"Fig. 6 (c): {layers[0]} filters ({w.shape[2]}x{w.shape[3]} pixels, each "
                   "drawn large and stretched to its own range)"
                   + (" (the net reads BGR: channels shown as RGB)" if bgr else "")
                   + ". Give --compare RUN (e.g. a run trained with --renorm-radius 0, or the "
                   "alexnet variant) for the paper's side-by-side panels.")
    else:
        other_net, other_name, other_config = other
        them = f"{other_name}: {other_net.arch}, {renorm_note(other_config)}"
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
        section_layer2_pair(page, out, net, me, other_net, them, source, args)
    if layers[2] is None:
        page.text("The net has one convolution: no layer-2 aliasing diagnostics.")
        return
    page.heading("Filter diagnostics (zfraw's addition: the paper shows these only as pictures)",
                 3)
    runs = {label: diagnostics(net, source, limit=args.limit, layers=layers)}
    if other is not None:
        runs[other[1]] = diagnostics(other[0], source, limit=args.limit)
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


def section_layer2_pair(page, out, net, me, other_net, them, source, args, layer="relu2"):
    """Fig. 6 (d)/(e): layer-2 top-9 projections of the two nets side by side."""
    panels = []
    for n, title in ((net, me), (other_net, them)):
        if layer not in {ly.name for ly in n.layers}:
            page.text(f"{title} has no {layer}: no layer-2 comparison.")
            return
        tk = collect_topk(n, source, [layer], k=9, batch_size=args.batch_size,
                          distinct=not args.top9_positions, desc="")[layer]
        maps = random_maps(tk.values, args.maps, args.seed, layer)
        items = project_topk(n, source, layer, tk, maps, batch_size=args.batch_size)
        blocks = [map_blocks(items[m])[0] for m in maps if items[m]]
        if not blocks:
            page.text(f"{title}: no {layer} map fired on these images.")
            return
        per_row = int(np.ceil(np.sqrt(len(blocks))))
        panels.append(titled(grid(blocks, per_row, pad=8), f"{title}\n{layer}, maps {maps}"))
    page.image(save_png(hstack(panels, pad=30), out / "layer2_compare.png"),
               f"Fig. 6 (d), (e): {layer} of the two nets side by side, for {args.maps} maps of "
               "each drawn at random: each 3x3 block is one map's top-9 projections over the "
               "validation images (as Fig. 2). In the paper, (d) is Krizhevsky's layer 2 "
               "(aliasing from the 4-pixel stride), (e) its own.")


def section_rules(page, out, net, source, layer, n_images=4):
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


def section_top9(page, out, net, source, args, state=None):
    page.heading("Top-9 activations per feature map (Fig. 2)")
    layers = present(net, args.top9_layers) if args.top9_layers else conv_relus(net)
    t0 = time.perf_counter()
    distinct = not args.top9_positions
    best = collect_topk(net, source, layers, k=9, batch_size=args.batch_size, distinct=distinct)
    if state is not None:
        state.setdefault("topk", {}).update(best)
    cells = ("the 9 validation images where the map's activation is strongest, one image per "
             "cell, each at its strongest position (9 distinct images, as in the paper; "
             "--top9-positions keeps the 9 strongest (image, position) pairs, where one image "
             "can fill several cells)") if distinct else (
             "the 9 strongest (image, position) pairs (--top9-positions: one image can fill "
             "several cells, at neighbouring positions)")
    page.text(f"One streaming pass over {len(source)} validation images kept, for every map of "
              f"{', '.join(layers)}, {cells} ({time.perf_counter() - t0:.1f} s). Shown per "
              f"layer, as in the paper: {args.maps} maps drawn at random (seed {args.seed}; "
              "--maps N, --seed S; --all-maps LAYER for all) among those that fire; left: each "
              "map's 9 projections (deconv, zero = grey) as a 3x3 block, each cropped to the "
              "activation's receptive field; right, at the same place: the image patches "
              "under them. Maps are listed row by row.")
    for layer in layers:
        tk = best[layer]
        if args.all_maps == layer:
            maps = list(range(tk.values.shape[0]))
        else:
            maps = random_maps(tk.values, args.maps, args.seed, layer)
        items = project_topk(net, source, layer, tk, maps, batch_size=args.batch_size)
        shown = [m for m in maps if items[m]]
        rf = net.receptive_field(layer)[0]
        if not shown:
            page.text(f"{layer}: no map fired on these images.")
            continue
        fig = layer_figure([map_blocks(items[m]) for m in shown])
        page.image(save_png(fig, out / f"top9_{layer}.png"),
                   f"{layer}: maps {shown} (receptive field {rf} px); left projections, right "
                   "patches")
        log(f"top-9 {layer}: {len(shown)} maps")


def section_evolution(page, out, run, config, net, source, args, mean=None, classes=None):
    page.heading("Feature evolution during training (Fig. 4)")
    if not run.epoch_checkpoints():
        page.text("No epoch-NNN.npz checkpoints in this run.")
        return
    train = load_train_source(config, mean, net.input_shape[1], args.evolution_images,
                              args.data, classes)
    layers = present(net, args.evolution_layers) if args.evolution_layers else conv_relus(net)
    # The maps to follow, chosen once: drawn at random among those that fire in the final net
    # on these training images; the same maps at every epoch.
    final = collect_topk(net, train, layers, k=1, batch_size=args.batch_size, desc="")
    maps = {layer: random_maps(final[layer].values, args.evolution_maps, args.seed, layer)
            for layer in layers}
    maps = {layer: m for layer, m in maps.items() if m}
    if not maps:
        page.text("No map of these layers fires in the final net.")
        return
    evo = evolution_by_layer(run.snapshots(args.device, config), train, maps,
                             batch_size=args.batch_size)
    epochs = [e for e, _ in evo]
    page.text(f"For each saved epoch ({', '.join(map(str, epochs))}; the paper: 1, 2, 5, 10, 20, "
              f"30, 40, 64), the strongest activation of each map over {len(train)} training "
              f"images (a seeded sample of the run's training set, --evolution-images; the "
              f"paper: all of them), projected to pixel space with the deconvnet and cropped to "
              f"its receptive field. Rows: {args.evolution_maps} maps per layer drawn at random "
              f"(seed {args.seed}) among those that fire in the final net, the same maps at "
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


def section_invariance(page, out, net, source, args, layers=None, truth=TRUE):
    page.heading("Invariance to vertical translation, scale and rotation (Fig. 5)")
    layers = layers or present(net, ["relu1", "relu7"]) or present(net, ["conv1", "fc7"])
    idx = first_per_class(source, args.invariance_images, fill=truth != TRUE)
    x, labels = source.inputs(idx), source.labels[idx]
    crop = source.crop
    step = max(1, crop // 32)
    amounts = {"translate": np.arange(-(crop // 4), crop // 4 + 1, step),
               "scale": np.round(np.linspace(0.6, 1.8, 13), 2),
               "rotate": np.arange(0, 361, 15)}
    feats = probs_and_features(net, layers, args.batch_size)
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
               f"{' and '.join(layers)} (the paper: layers 1 and 7), "
               f"{len(layers) + 2}: the probability of {truth}.")


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


def section_occlusion(page, out, net, source, args, truth=TRUE, state=None):
    page.heading("Occlusion sensitivity (Fig. 7)")
    layer = present(net, [args.occlusion_layer])
    if not layer:
        page.text(f"No layer {args.occlusion_layer!r} in this net.")
        return
    forward = probs_and_map(net, layer[0], args.batch_size)
    size = args.occlusion_size or max(2, source.crop // 4)
    stride = args.occlusion_stride or max(1, source.crop // 8)
    has_box = source.boxes is not None
    topk = (state or {}).get("topk", {}).get(layer[0])
    if topk is None and args.occlusion_figures:
        topk = collect_topk(net, source, layer, k=10, batch_size=args.batch_size,
                            distinct=True, desc="")[layer[0]]
    for n in range(min(args.occlusion_figures, len(source))):
        image = source.inputs([n])[0]
        m = occlusion_sweep(forward, image, int(source.labels[n]), size, stride,
                            args.batch_size, occluded=incremental(net, layer[0], image))
        box = tuple(source.boxes[n]) if has_box and source.boxes[n, 0] >= 0 else None
        img = scale_to_uint8(source.pixels([n])[0], 0, 255)
        proj = occlusion_projections(net, source, layer[0], n, m.fmap, topk, args.batch_size)
        page.image(plots.occlusion_figure(out / f"occlusion_{n}.png", img, m, source.names,
                                          int(source.labels[n]), box, proj),
                   f"image {n}, as the paper's Fig. 7 columns: (a) the image (white: the "
                   f"object's box), (b) total activation of {layer[0]}'s strongest map in the "
                   f"unoccluded image (map {m.fmap}) with a grey {size}x{size} square (stride "
                   f"{stride}) centred at each place, (c) that map's strongest activation "
                   f"projected into this image (framed) and its projections in other validation "
                   f"images (the top-9 pass's), (d) the probability of {truth}, (e) the most "
                   f"probable class")
    if has_box and args.occlusion_stats:
        page.heading("Share of the drop inside the object's box (zfraw's addition, not in the "
                     "paper)", 3)
        rows, shares, areas = box_share_stats(forward, source, args.occlusion_stats, size,
                                              args.occlusion_stats_stride or stride,
                                              args.batch_size, net, layer[0])
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


def incremental(net, layer: str, image):
    """The incremental sweep's forward (zfraw/viz/incremental.py: each occluded copy recomputes
    only what its square changes; equal to the full forward) on the CPU; None on the GPU, where
    the plain sweep's batched full forwards are used."""
    return IncrementalOcclusion(net, image, layer) if net.device == "cpu" else None


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


def section_correspondence(page, out, net, source, args, layers=None, parts_loader=None):
    page.heading("Correspondence (Fig. 8, Table 1)")
    layers = layers or present(net, ["relu5", "relu7"]) or present(net, ["conv5", "fc7"])
    if args.parts:
        source = parts_loader(args.parts)
        where = f"the images and part boxes of {args.parts}"
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
    groups = part_groups(source, args.correspondence_images, args.correspondence_classes)
    if not groups:
        page.text(f"No class with at least 2 images sharing their parts in {where}.")
        return
    page.text(f"As the paper's Sec. 5: occlude the same part in up to "
              f"{args.correspondence_images} images of a class ({where}); eps_i = the change "
              "of image i's feature vector at a layer; for each pair of images, the Hamming "
              "distance between sign(eps_i) and sign(eps_j) as a fraction of the layer's "
              "units. Table: its mean +- standard deviation over the pairs (the paper's Delta "
              "is the sum over ordered pairs, n(n-1) times the mean); lower = more consistent. "
              f"Random: squares of the same sizes at random places inside each image's object "
              f"box ({args.random_draws} draws per part, all pairs pooled). Occluder: grey "
              "(the mean).")
    feats = probs_and_features(net, layers, args.batch_size, probs=False)
    for c, idx, names in groups:
        x = source.inputs(idx)
        regions = object_regions(source, idx)
        rows, randoms, examples = [], {layer: [] for layer in layers}, []
        for k, part in enumerate(names):
            boxes = [source.parts[i][part] for i in idx]
            res = corr.correspondence(feats, x, boxes, layers, n_random=args.random_draws,
                                      seed=args.seed + k, regions=regions)
            rows.append([part] + [f"{res[ly]['part_mean']:.3f} \u00b1 {res[ly]['part_std']:.3f}"
                                  for ly in layers])
            for ly in layers:
                if res[ly]["random_distances"] is not None:
                    randoms[ly].append(res[ly]["random_distances"])
            if res[layers[0]]["random"] and len(examples) < 2:
                examples.append(res[layers[0]]["random"])
        if args.random_draws:
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


# -- command line ----------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="training run folder (config.json, checkpoints)")
    p.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="an ONNX classification net instead of a run (needs --data)")
    p.add_argument("--checkpoint", default=None, help="checkpoint to report on (default: the "
                   "run's newest, last.npz)")
    p.add_argument("--data", default=None, help="dataset spec (default: the run's)")
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help=f"--model's input convention: {', '.join(PRESETS)} (default: the one "
                   "the file records, written by zfraw's save_onnx)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="--model's class names, one per line (default: 'class k')")
    p.add_argument("--out", default=None, help="report folder (default RUN/report, or "
                   "MODEL's folder/report-<stem>)")
    p.add_argument("--compare", default=None, help="another run (e.g. alexnet vs zf): its "
                   "first-layer filters and diagnostics beside this run's")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    # The defaults keep a 64x64 net's report to a couple of minutes on 2 CPU cores; raise them
    # (--limit, --maps, --occlusion-stats, --evolution-images) for a fuller picture.
    p.add_argument("--limit", type=int, default=200, help="validation images used (default 200)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top9-layers", nargs="*", default=None,
                   help="layers for top-9 (default: each conv layer's relu)")
    p.add_argument("--maps", type=int, default=9, help="maps per top-9 layer, drawn at random "
                   "among those that fire (default 9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choices of maps "
                   "and occlusions (default 0)")
    p.add_argument("--top9-positions", action="store_true", help="top-9 cells: the 9 strongest "
                   "(image, position) pairs instead of 9 distinct images")
    p.add_argument("--all-maps", default=None, metavar="LAYER", help="show every map of LAYER")
    p.add_argument("--rules-layer", default=None,
                   help="default relu5 (a model: the last conv's relu)")
    p.add_argument("--evolution-layers", nargs="*", default=None,
                   help="default: each conv layer's relu (runs only)")
    p.add_argument("--evolution-maps", type=int, default=6,
                   help="maps followed per layer, drawn at random once (default 6)")
    p.add_argument("--evolution-images", type=int, default=256,
                   help="training images searched at each epoch (default 256; the paper: all)")
    p.add_argument("--invariance-images", type=int, default=5)
    p.add_argument("--occlusion-layer", default=None,
                   help="default relu5 (a model: the last conv's relu)")
    p.add_argument("--occlusion-size", type=int, default=None, help="default crop/4")
    p.add_argument("--occlusion-stride", type=int, default=None, help="default crop/8")
    p.add_argument("--occlusion-figures", type=int, default=2)
    p.add_argument("--occlusion-stats", type=int, default=8,
                   help="images for the in-box drop statistic (0: skip)")
    p.add_argument("--occlusion-stats-stride", type=int, default=None,
                   help="stride for the statistic (default: the figures' stride)")
    p.add_argument("--correspondence-classes", type=int, default=2)
    p.add_argument("--correspondence-images", type=int, default=5,
                   help="images per class whose parts are occluded (the paper: 5)")
    p.add_argument("--parts", default=None, metavar="FILE",
                   help="part boxes for the correspondence section: JSON {image file: {part: "
                   "[x0, y0, x1, y1]}} (default: the synthetic set's own parts)")
    p.add_argument("--random-draws", type=int, default=5)
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS,
                   help="sections to leave out")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


SECTIONS = ("filters", "rules", "top9", "evolution", "invariance", "occlusion",
            "correspondence")
RUN_ONLY = ("checkpoint", "compare", "evolution_layers")
MODEL_ONLY = ("preprocess", "labels")


def check_source(args) -> None:
    """Exactly one of --run and --model, and only the options that go with it."""
    if (args.run is None) == (args.model is None):
        raise ValueError("give --run DIR (a training run) or --model FILE.onnx, not both"
                         if args.run else "give --run DIR (a training run) or --model "
                         "FILE.onnx (an imported net)")
    wrong = MODEL_ONLY if args.run else RUN_ONLY
    for name in wrong:
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')} goes with "
                             f"{'--model' if args.run else '--run'}, not "
                             f"{'--run' if args.run else '--model'}")
    if args.model and not args.data:
        raise ValueError("--model needs --data SPEC (e.g. folder:MY_IMAGES): the images to "
                         "report on")


def check_args(args, net) -> None:
    """Refuse, before any work, options that no section could honour (ValueError, one line)."""
    for name in ("limit", "batch_size", "maps", "evolution_maps", "evolution_images",
                 "invariance_images"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}")
    if args.correspondence_images < 2:
        raise ValueError(f"--correspondence-images must be at least 2 (pairs of images), got "
                         f"{args.correspondence_images}")
    if args.parts is not None and not Path(args.parts).is_file():
        raise ValueError(f"--parts {args.parts}: no such file")
    for name in ("occlusion_figures", "occlusion_stats", "correspondence_classes",
                 "random_draws"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("occlusion_size", "occlusion_stride", "occlusion_stats_stride"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= net.input_shape[1]:
            raise ValueError(f"--{name.replace('_', '-')} must be in 1..{net.input_shape[1]} "
                             f"(the net's input side), got {value}")
    have = [layer.name for layer in net.layers]
    layers = {"--top9-layers": args.top9_layers or [],
              "--evolution-layers": args.evolution_layers or [],
              "--rules-layer": [args.rules_layer], "--occlusion-layer": [args.occlusion_layer],
              "--all-maps": [args.all_maps] if args.all_maps else []}
    for option, names in layers.items():
        unknown = [n for n in names if n not in have]
        if unknown:
            raise ValueError(f"{option}: no layer {', '.join(unknown)} in this {net.arch}; its "
                             f"layers are {', '.join(have)}")
    if args.all_maps and args.top9_layers is not None and args.all_maps not in args.top9_layers:
        raise ValueError(f"--all-maps {args.all_maps} is not among --top9-layers")
    if args.top9_layers == []:
        raise ValueError("--top9-layers needs at least one layer name")


def prepare_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_sections(steps, skip) -> None:
    for name, step in steps:
        if name in skip:
            continue
        t0 = time.perf_counter()
        log(f"report: {name} ...")
        step()
        log(f"report: {name} done in {time.perf_counter() - t0:.1f} s")


def input_table(page, spec: InputSpec, how: str) -> None:
    page.heading("Input convention", 3)
    page.text(how)
    page.table(["field", "value"], spec.rows())


def build_report(args) -> Path:
    """Write the report for ``args`` (parsed options); returns the page's path. Raises
    ValueError (RunError, DataError, OnnxImportError) for a bad run, model or option."""
    check_source(args)
    host.keep_freed_memory()  # top-9 and occlusion run many same-sized batches
    if args.model:
        return build_model_report(args)
    run = RunDir(args.run)
    config = run.read_config()
    net, ckpt, ckpt_path = run.load_net(args.checkpoint, args.device, config)
    args.rules_layer = args.rules_layer or "relu5"
    args.occlusion_layer = args.occlusion_layer or "relu5"
    check_args(args, net)
    crop = net.input_shape[1]
    source = load_source(config, ckpt["mean"], crop, args.data, args.limit,
                         classes=ckpt["meta"].get("classes"))
    out = prepare_out(Path(args.out) if args.out else run.report_path)
    page = HtmlPage(f"zfraw report: {run.path.name} ({config['arch']}, width "
                    f"{config.get('width', 1)})")
    page.text(f"Run {run.path.resolve()}; checkpoint {ckpt_path.name}; "
              f"{len(source)} validation images of {args.data or config.get('data')}.")
    input_table(page, source.spec, "The run's own: its training set's mean image and its "
                "input scale (zfraw.data's evaluation view, as in training's validation).")
    section_training(page, out, run, net)
    other = None
    if args.compare:
        other_run = RunDir(args.compare)
        oc = other_run.read_config()
        other_net = other_run.load_net(None, args.device, oc)[0]
        if other_net.input_shape != net.input_shape or \
                oc.get("input_scale", 1.0) != config.get("input_scale", 1.0):
            raise ValueError(f"--compare: {args.compare} takes {other_net.input_shape} inputs "
                             f"scaled by {oc.get('input_scale', 1.0)}, this run "
                             f"{net.input_shape} by {config.get('input_scale', 1.0)}; compare "
                             "runs with the same input size and scale")
        other = (other_net, other_run.path.name, oc)
    state = {}
    classes = ckpt["meta"].get("classes")
    data = args.data or config.get("data", "synthetic")

    def parts_loader(path):
        return load_part_source(path, data, crop, source.images.shape[1], classes,
                                config.get("seed", 0), config.get("cache_dir"),
                                mean=ckpt["mean"], scale=config.get("input_scale", 1.0))

    run_sections([
        ("filters", lambda: section_filters(page, out, net, source, args, other,
                                            config=config)),
        ("rules", lambda: section_rules(page, out, net, source, args.rules_layer)),
        ("top9", lambda: section_top9(page, out, net, source, args, state)),
        ("evolution", lambda: section_evolution(page, out, run, config, net, source, args,
                                                ckpt["mean"], classes)),
        ("invariance", lambda: section_invariance(page, out, net, source, args)),
        ("occlusion", lambda: section_occlusion(page, out, net, source, args, state=state)),
        ("correspondence", lambda: section_correspondence(page, out, net, source, args,
                                                          parts_loader=parts_loader))],
        args.skip)
    path = page.write(out / "index.html")
    log(f"report written to {path}")
    return path


# -- an imported net ---------------------------------------------------------------------------
def load_model(path, device: str = "cpu"):
    """The Net of an ONNX file, on ``device``; ValueError (one line) for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--model {path}: no such file")
    try:
        from .nets.onnx import load_onnx
    except ImportError as e:
        raise ValueError(str(e)) from None
    try:
        net = load_onnx(path)
    except ImportError as e:  # the onnx package itself is missing
        raise ValueError(str(e)) from None
    c, h, w = net.input_shape
    if c != 3 or h != w:
        raise ValueError(f"{path}: input (N, {c}, {h}, {w}); the report reads RGB images into "
                         "square 3-channel inputs")
    return net.to(device).eval()


def read_labels(path, classes: int) -> list:
    """Class names, one per line (blank lines at the end ignored), exactly ``classes`` of them."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--labels {path}: cannot read it ({e.__class__.__name__}: {e})") \
            from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if len(names) != classes:
        raise ValueError(f"--labels {path} has {len(names)} names, the net has {classes} "
                         "outputs; give one name per output, one per line")
    return names


def model_input_spec(args, net):
    """(InputSpec or None, how it was chosen): None means 'zfraw' without a recorded mean (the
    dataset's training mean image is used)."""
    recorded = getattr(net, "input_spec", None)
    name = args.preprocess
    if name is None:
        if recorded is None:
            raise ValueError(f"{args.model} does not record its input convention; give "
                             f"--preprocess {'|'.join(PRESETS)} (the zoo's Caffe nets: caffe)")
        return recorded, "Recorded in the model file (metadata_props 'zfraw.input_spec')."
    if name not in PRESETS:
        raise ValueError(f"--preprocess {name!r}: choose one of {', '.join(PRESETS)}")
    if name == "zfraw":
        if recorded is not None:
            return recorded, "--preprocess zfraw: the convention recorded in the model file."
        return None, ("--preprocess zfraw, and the file records no mean: the per-pixel mean "
                      f"image of {args.data}'s training images, scale 1.")
    return InputSpec.preset(name, net.input_shape[1]), f"--preprocess {name}."


def predict(net, source, batch_size: int) -> np.ndarray:
    """The net's top-1 class on each unmodified image of source."""
    from .backend import to_device

    out = []
    for _, x in source.batches(batch_size, desc="top-1 predictions"):
        out.append(to_host(net.forward(to_device(x, net.device))).argmax(axis=1))
    return np.concatenate(out)


def build_model_report(args) -> Path:
    """The report of an imported ONNX net (``--model``): no training or evolution sections,
    layers chosen by type unless given."""
    model = Path(args.model)
    net = load_model(model, args.device)
    names = read_labels(args.labels, net.num_classes) if args.labels else None
    spec, how = model_input_spec(args, net)
    chosen = imported_layers(net)
    given = {"rules": args.rules_layer, "occlusion": args.occlusion_layer,
             "top9": args.top9_layers}
    args.rules_layer = args.rules_layer or chosen["rules"]
    args.occlusion_layer = args.occlusion_layer or chosen["occlusion"]
    if args.top9_layers is None:
        args.top9_layers = chosen["top9"]
    check_args(args, net)
    crop = net.input_shape[1]
    source, matched = load_model_source(args.data, spec, crop, args.limit, names)
    class_names = names or [f"class {k}" for k in range(net.num_classes)]
    out = prepare_out(Path(args.out) if args.out else model.parent / f"report-{model.stem}")
    if matched:
        truth = TRUE
        labels_note = ("The images' dataset classes are all among the model's:"
                       " 'the true class' is the image's own.")
    else:
        source = source.relabeled(predict(net, source, args.batch_size), class_names)
        truth = "the class the net predicts on the unmodified image"
        labels_note = ("The images' dataset classes are not the model's"
                       + ("" if args.labels else " (without --labels the model's are unnamed)")
                       + ": where a section needs the true class (occlusion's p(true class), "
                       "invariance's probability curves, the classes of correspondence), it "
                       "uses the net's top-1 prediction on the unmodified image instead.")
    info = net.onnx_info
    page = HtmlPage(f"zfraw report: {model.name} (imported ONNX net)")
    page.text(f"Model {model.resolve()}: graph {info['graph_name'] or '(unnamed)'}, opset "
              f"{info['opset']}, producer {info['producer'] or '(none)'}; input "
              f"{info['input_name']!r} (N, {', '.join(map(str, net.input_shape))}), "
              f"{net.num_classes} classes"
              + (" (the graph ends in a Softmax; the report reads its logits)"
                 if net.softmax_output else "")
              + f". {len(source)} validation images of {args.data}.")
    input_table(page, source.spec, how)
    page.heading("Classes and labels", 3)
    page.text(f"Class names: {'from ' + args.labels if args.labels else 'class k (no --labels)'}"
              f". {labels_note}")
    page.heading("Layers", 3)
    picked = [f"top-9: {', '.join(args.top9_layers)}", f"rules: {args.rules_layer}",
              f"occlusion: {args.occlusion_layer}",
              f"invariance: {', '.join(chosen['invariance'])}",
              f"correspondence: {', '.join(chosen['correspondence'])}",
              f"filters: {', '.join(n for n in chosen['filters'] if n)}"]
    by_type = [k for k, v in given.items() if not v]
    page.text("The graph's layer names are its own, so the sections' layers are chosen by type "
              "(the ReLU after each conv; the last conv's ReLU for rules and occlusion; the "
              "first conv's and the last hidden fc's ReLU for invariance; the last conv's and "
              "the last hidden fc's for correspondence)"
              + (f", except {', '.join(k for k in given if k not in by_type)} as given" if
                 len(by_type) < len(given) else "")
              + ": " + "; ".join(picked) + ". The training and feature-evolution sections need "
              "a training run and are left out.")
    page.heading("Architecture", 3)
    page.pre(net.summary_text())
    state = {}

    def parts_loader(path):
        return load_part_source(path, args.data, crop, source.images.shape[1],
                                mean=None, spec=source.spec)

    run_sections([
        ("filters", lambda: section_filters(page, out, net, source, args,
                                            layers=chosen["filters"], label="this net")),
        ("rules", lambda: section_rules(page, out, net, source, args.rules_layer)),
        ("top9", lambda: section_top9(page, out, net, source, args, state)),
        ("invariance", lambda: section_invariance(page, out, net, source, args,
                                                  chosen["invariance"], truth)),
        ("occlusion", lambda: section_occlusion(page, out, net, source, args, truth, state)),
        ("correspondence", lambda: section_correspondence(page, out, net, source, args,
                                                          chosen["correspondence"],
                                                          parts_loader))],
        args.skip)
    path = page.write(out / "index.html")
    log(f"report written to {path}")
    return path


def main(argv=None) -> int:
    """The command line: 0 when the report is written; 2 with a one-line error (no traceback,
    unless --debug) for a bad run folder, checkpoint, model, dataset or option; 130 on
    Ctrl-C."""
    args = parse_args(argv)
    try:
        build_report(args)
    except KeyboardInterrupt:
        log("report: stopped by Ctrl-C")
        return 130
    except (ValueError, DataError) as e:     # RunError, CheckpointError and DataError included
        if args.debug:
            import traceback
            traceback.print_exception(e)
        log("error: " + " ".join(str(e).split()))  # one line, whatever the message holds
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
