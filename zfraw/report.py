"""The visual report of a training run: ``python -m zfraw.report --run DIR [--data SPEC]``.

Writes ``DIR/report/index.html`` with PNG figures beside it: training curves, the architecture
summary, first-layer filters and their diagnostics (Sec. 4.1), projections with the three
rules, top-9 projections and patches (Fig. 2), feature evolution (Fig. 4), invariance curves
(Fig. 5), occlusion maps and the in-box share of the probability drop (Fig. 7), and the
correspondence measure (Table 1). Every section reads the validation images of the run's
dataset (or ``--data``), centre crops minus the run's mean image.
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
from .viz.evolution import evolution_figure, feature_evolution
from .viz.features import probs_and_features, probs_and_map
from .viz.filters import diagnostics, filter_grid
from .viz.html import HtmlPage
from .viz.images import (DISPLAY_PERCENTILE, hstack, save_png, scale_to_uint8, symmetric_uint8,
                         tile_zoom, upscale, vstack)
from .viz.invariance import invariance_curves
from .viz.occlusion import drop_share_in_box, occlusion_sweep
from .viz.projection import forward_to, project_strongest
from .data import DataError
from .rundir import RunDir
from .viz.run import load_source
from .viz.top9 import collect_topk, map_panel, project_topk, top9_figure


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


def section_filters(page, out, net, source, args, other=None):
    page.heading("First-layer filters and aliasing (Sec. 4.1, Fig. 6)")
    page.image(save_png(filter_grid(to_host(net.layer("conv1").params["W"])), out / "conv1.png"),
               "conv1 filters, each stretched to its own range")
    runs = {"this run": diagnostics(net, source, limit=args.limit)}
    if other is not None:
        other_net, other_name = other
        page.image(save_png(filter_grid(to_host(other_net.layer("conv1").params["W"])),
                            out / "conv1_compare.png"), f"conv1 filters of {other_name}")
        runs[other_name] = diagnostics(other_net, source, limit=args.limit)
    page.text("Dead: positive at < 1% of (image, position) pairs. Bands of each filter's power "
              "spectrum by radial frequency (Nyquist = 1): low < 0.25 <= mid < 0.75 <= high; "
              "dominated: > 80% of the energy in one band. conv2 Nyquist share: energy of conv2 "
              "maps at radial frequency >= 0.75. Shift sensitivity: relative change of conv2's "
              "position-averaged features when the image moves by s pixels diagonally "
              "(s below conv2's stride; an alias-free layer would barely change).")
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
                                "first-layer diagnostics"), "the table's numbers as fractions")


def section_rules(page, out, net, source, layer, n_images=4):
    page.heading(f"Projection rules at {layer}")
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
    rows = [hstack([c[i] for c in cols]) for i in range(len(x))]
    page.image(save_png(vstack(rows), out / "rules.png"),
               f"image, then the strongest {layer} activation of its strongest map projected "
               "with 'deconv' (the paper: ReLU on the signal), 'backprop' (gradient: ReLU mask "
               "of the forward pass) and 'guided' (both); zero = grey")


def section_top9(page, out, net, source, args):
    page.heading("Top-9 activations per feature map (Fig. 2)")
    layers = present(net, args.top9_layers) if args.top9_layers else conv_relus(net)
    t0 = time.perf_counter()
    best = collect_topk(net, source, layers, k=9, batch_size=args.batch_size)
    page.text(f"One streaming pass over {len(source)} validation images kept the 9 strongest "
              f"activations of every map of {', '.join(layers)} "
              f"({time.perf_counter() - t0:.1f} s). Shown per layer: the {args.maps} maps with "
              "the largest top activation (all maps for --all-maps); left 3x3 grid: the "
              "projections (deconv), each cropped to the activation's receptive field; right: "
              "the image patches under them.")
    for layer in layers:
        tk = best[layer]
        if args.all_maps == layer:
            maps = list(range(tk.values.shape[0]))
        else:
            maps = [int(m) for m in np.argsort(-tk.values[:, 0])[:args.maps]]
        items = project_topk(net, source, layer, tk, maps, batch_size=args.batch_size)
        panels = {m: map_panel(items[m]) for m in maps if items[m]}
        rf = net.receptive_field(layer)[0]
        page.image(save_png(top9_figure(panels), out / f"top9_{layer}.png"),
                   f"{layer}: maps {maps} (receptive field {rf} px)")
        log(f"top-9 {layer}: {len(maps)} maps")


def section_evolution(page, out, run, config, net, source, args):
    page.heading("Feature evolution during training (Fig. 4)")
    if not run.epoch_checkpoints():
        page.text("No epoch-NNN.npz checkpoints in this run.")
        return
    sub = min(args.evolution_images, len(source))
    for layer in present(net, args.evolution_layers) or conv_relus(net)[-1:]:
        # The maps to follow: the final net's strongest on these images.
        best = collect_topk(net, source, [layer], k=1, limit=sub, desc="")[layer]
        maps = [int(m) for m in np.argsort(-best.values[:, 0])[:args.evolution_maps]]
        evo = feature_evolution(run.snapshots(args.device, config), source, layer, maps,
                                batch_size=args.batch_size, limit=sub)
        epochs = [e for e, _ in evo]
        page.image(save_png(evolution_figure(evo, maps), out / f"evolution_{layer}.png"),
                   f"{layer}, maps {maps} (rows), epochs {epochs} (columns): projection of "
                   f"the strongest activation over {sub} images at that epoch")


def section_invariance(page, out, net, source, args):
    page.heading("Invariance to translation, scale and rotation (Fig. 5)")
    layers = present(net, ["relu1", "relu7"]) or present(net, ["conv1", "fc7"])
    idx = first_per_class(source, args.invariance_images)
    x, labels = source.inputs(idx), source.labels[idx]
    crop = source.crop
    amounts = {"translate": np.arange(0, crop // 4 + 1, max(1, crop // 32)),
               "scale": np.linspace(0.6, 1.4, 9), "rotate": np.arange(0, 361, 30)}
    feats = probs_and_features(net, layers, args.batch_size)
    curves = {k: invariance_curves(feats, x, labels, k, a, layers) for k, a in amounts.items()}
    page.image(plots.invariance_figure(out / "invariance.png", curves, layers),
               f"{len(idx)} images (grey, one line each; blue: mean); rows: Euclidean distance "
               f"between the feature vectors of the original and the transformed image at "
               f"{' and '.join(layers)}, then the true class's probability")


def first_per_class(source, n):
    """Up to n image indices, one per class in turn, so curves cover different classes."""
    picks = []
    for c in np.unique(source.labels):
        picks.append(source.class_indices(c)[0])
    return np.array(sorted(picks)[:n])


def section_occlusion(page, out, net, source, args):
    page.heading("Occlusion sensitivity (Fig. 7)")
    layer = present(net, [args.occlusion_layer])
    if not layer:
        page.text(f"No layer {args.occlusion_layer!r} in this net.")
        return
    forward = probs_and_map(net, layer[0], args.batch_size)
    size = args.occlusion_size or max(2, source.crop // 4)
    stride = args.occlusion_stride or max(1, source.crop // 8)
    has_box = source.boxes is not None
    for n in range(min(args.occlusion_figures, len(source))):
        m = occlusion_sweep(forward, source.inputs([n])[0], int(source.labels[n]), size, stride,
                            args.batch_size)
        box = tuple(source.boxes[n]) if has_box and source.boxes[n, 0] >= 0 else None
        img = scale_to_uint8(source.pixels([n])[0], 0, 255)
        page.image(plots.occlusion_figure(out / f"occlusion_{n}.png", img, m, source.names,
                                          int(source.labels[n]), box),
                   f"image {n}: grey {size}x{size} square, stride {stride}; (a) total "
                   f"activation of {layer[0]}'s strongest map, (b) probability of the true "
                   f"class, (c) most probable class, at each square's centre")
    if has_box and args.occlusion_stats:
        rows, shares, areas = box_share_stats(forward, source, args.occlusion_stats, size,
                                              args.occlusion_stats_stride or stride,
                                              args.batch_size)
        page.text(f"Share of the true-class probability drop from squares centred inside the "
                  f"object's box, over {len(shares)} validation images with a box and a drop: "
                  f"mean {np.mean(shares):.3f} (median {np.median(shares):.3f}); the share of "
                  f"square centres inside the box (no localisation) averages {np.mean(areas):.3f}.")
        page.table(["image", "class", "p(true)", "drop share in box", "centre share in box"],
                   rows[:20])


def box_share_stats(forward, source, n_images, size, stride, batch_size):
    """Per-image (share of the drop in box, share of centres in box) over the first n images
    with a box. Returns (table rows, shares, area shares) over images with any drop."""
    rows, shares, areas = [], [], []
    idx = [i for i in range(len(source)) if source.boxes[i, 0] >= 0][:n_images]
    for k, n in enumerate(idx):
        if k % 10 == 0:
            log(f"occlusion box statistic: {k}/{len(idx)}")
        m = occlusion_sweep(forward, source.inputs([n])[0], int(source.labels[n]), size, stride,
                            batch_size)
        share, area = drop_share_in_box(m, tuple(source.boxes[n]))
        rows.append([n, source.names[source.labels[n]], m.base_prob, share, area])
        if np.isfinite(share):
            shares.append(share)
            areas.append(area)
    return rows, np.array(shares), np.array(areas)


def section_correspondence(page, out, net, source, args):
    page.heading("Correspondence (Table 1)")
    layers = present(net, ["relu5", "relu7"]) or present(net, ["conv5", "fc7"])
    if source.boxes is None:
        page.text("The dataset has no boxes: skipped.")
        return
    rows = []
    for c in np.unique(source.labels)[:args.correspondence_classes]:
        idx = [i for i in source.class_indices(c) if source.boxes[i, 0] >= 0
               and np.all(source.boxes[i, 2:] - source.boxes[i, :2] >= 2)][:5]
        if len(idx) < 2:
            continue
        x = source.inputs(idx)
        obj = [tuple(b) for b in source.boxes[idx]]
        top = [(y0, x0, (y0 + y1) // 2, x1) for y0, x0, y1, x1 in obj]
        feats = probs_and_features(net, layers, args.batch_size, probs=False)
        for part, boxes in (("object box", obj), ("top half of the box", top)):
            res = corr.correspondence(feats, x, boxes, layers, n_random=args.random_draws)
            for layer in layers:
                r = res[layer]
                rows.append([source.names[c], part, layer, len(idx), r["part"] / r["pairs"],
                             r["random_mean"] / r["pairs"], r["random_std"] / r["pairs"]])
    page.text("Occlude the same part in up to 5 images of a class; eps_i = feature vector "
              "change of image i; Delta = sum over ordered pairs i != j of the Hamming distance "
              "between sign(eps_i) and sign(eps_j), here as the mean per pair of the fraction "
              "of differing signs (lower = more consistent). Control: squares of the same "
              f"sizes at random places ({args.random_draws} draws, mean and std).")
    page.table(["class", "occluded part", "layer", "images", "Delta/pair (part)",
                "Delta/pair (random)", "std (random)"], rows)


# -- command line ----------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (config.json, checkpoints)")
    p.add_argument("--checkpoint", default=None, help="checkpoint to report on (default: the "
                   "run's newest, last.npz)")
    p.add_argument("--data", default=None, help="dataset spec (default: the run's)")
    p.add_argument("--out", default=None, help="report folder (default RUN/report)")
    p.add_argument("--compare", default=None, help="another run (e.g. alexnet vs zf): its "
                   "first-layer filters and diagnostics beside this run's")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    # The defaults keep a 64x64 net's report to a couple of minutes on 2 CPU cores; raise them
    # (--limit, --maps, --occlusion-stats, --evolution-images) for a fuller picture.
    p.add_argument("--limit", type=int, default=200, help="validation images used (default 200)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top9-layers", nargs="*", default=None,
                   help="layers for top-9 (default: each conv layer's relu)")
    p.add_argument("--maps", type=int, default=6, help="maps shown per top-9 layer")
    p.add_argument("--all-maps", default=None, metavar="LAYER", help="show every map of LAYER")
    p.add_argument("--rules-layer", default="relu5")
    p.add_argument("--evolution-layers", nargs="*", default=["relu2", "relu5"])
    p.add_argument("--evolution-maps", type=int, default=6)
    p.add_argument("--evolution-images", type=int, default=48)
    p.add_argument("--invariance-images", type=int, default=5)
    p.add_argument("--occlusion-layer", default="relu5")
    p.add_argument("--occlusion-size", type=int, default=None, help="default crop/4")
    p.add_argument("--occlusion-stride", type=int, default=None, help="default crop/8")
    p.add_argument("--occlusion-figures", type=int, default=2)
    p.add_argument("--occlusion-stats", type=int, default=8,
                   help="images for the in-box drop statistic (0: skip)")
    p.add_argument("--occlusion-stats-stride", type=int, default=None,
                   help="stride for the statistic (default: the figures' stride)")
    p.add_argument("--correspondence-classes", type=int, default=2)
    p.add_argument("--random-draws", type=int, default=5)
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS,
                   help="sections to leave out")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


SECTIONS = ("filters", "rules", "top9", "evolution", "invariance", "occlusion",
            "correspondence")


def check_args(args, net) -> None:
    """Refuse, before any work, options that no section could honour (ValueError, one line)."""
    for name in ("limit", "batch_size", "maps", "evolution_maps", "evolution_images",
                 "invariance_images", "random_draws"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}")
    for name in ("occlusion_figures", "occlusion_stats", "correspondence_classes"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("occlusion_size", "occlusion_stride", "occlusion_stats_stride"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= net.input_shape[1]:
            raise ValueError(f"--{name.replace('_', '-')} must be in 1..{net.input_shape[1]} "
                             f"(the net's input side), got {value}")
    have = [layer.name for layer in net.layers]
    layers = {"--top9-layers": args.top9_layers or [], "--evolution-layers": args.evolution_layers,
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


def build_report(args) -> Path:
    """Write the report for ``args`` (parsed options); returns the page's path. Raises
    ValueError (RunError, DataError) for a bad run or option."""
    host.keep_freed_memory()  # top-9 and occlusion run many same-sized batches
    run = RunDir(args.run)
    config = run.read_config()
    net, ckpt, ckpt_path = run.load_net(args.checkpoint, args.device, config)
    check_args(args, net)
    crop = net.input_shape[1]
    source = load_source(config, ckpt["mean"], crop, args.data, args.limit,
                         classes=ckpt["meta"].get("classes"))
    out = Path(args.out) if args.out else run.report_path
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    page = HtmlPage(f"zfraw report: {run.path.name} ({config['arch']}, width "
                    f"{config.get('width', 1)})")
    page.text(f"Run {run.path.resolve()}; checkpoint {ckpt_path.name}; "
              f"{len(source)} validation images of {args.data or config.get('data')}.")
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
        other = (other_net, f"{other_run.path.name} ({oc['arch']})")
    steps = [("filters", lambda: section_filters(page, out, net, source, args, other)),
             ("rules", lambda: section_rules(page, out, net, source, args.rules_layer)),
             ("top9", lambda: section_top9(page, out, net, source, args)),
             ("evolution", lambda: section_evolution(page, out, run, config, net, source, args)),
             ("invariance", lambda: section_invariance(page, out, net, source, args)),
             ("occlusion", lambda: section_occlusion(page, out, net, source, args)),
             ("correspondence", lambda: section_correspondence(page, out, net, source, args))]
    for name, step in steps:
        if name in args.skip:
            continue
        t0 = time.perf_counter()
        log(f"report: {name} ...")
        step()
        log(f"report: {name} done in {time.perf_counter() - t0:.1f} s")
    path = page.write(out / "index.html")
    log(f"report written to {path}")
    return path


def main(argv=None) -> int:
    """The command line: 0 when the report is written; 2 with a one-line error (no traceback,
    unless --debug) for a bad run folder, checkpoint, dataset or option; 130 on Ctrl-C."""
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
        log(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
