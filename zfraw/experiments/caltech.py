"""The paper's transfer experiments on Caltech: Table 4 (Caltech-101, from scratch against a
pretrained net with a new softmax on its fixed layers 1-7), Table 5 (the same on Caltech-256),
Table 7 (a linear SVM and a softmax on the features of each layer) and Fig. 9 (accuracy against
training images per class).

The pretrained net is a zfraw run (``--source RUN``: e.g. a Tiny ImageNet training). Its
features are computed once for every image of the Caltech tree, stored at the source run's
image size and seen through its evaluation view, and cached in ``OUT/features``; each random
split (``--splits``, the paper's 5) then only selects rows, so the classifiers train in seconds.
"From scratch" rows are ordinary run folders, ``OUT/scratch-N-split-S``, resumable as any run.
Accuracies are the Caltech protocol's mean per-class accuracy, in percent, mean and standard
deviation over the splits.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..data import load_caltech_all, parse_spec, split_rows, stored_size
from ..data.caltech101 import N_TEST
from ..data.spec import caltech_kind
from ..rundir import RunDir
from ..training import TrainConfig
from ..viz.source import ImageSource
from . import paper
from .classifiers import softmax_accuracy, svm_accuracy
from .features import cached_features, layer_features
from .results import write_results
from .tables import scale_text, train_row


def _caltech(base: TrainConfig):
    """(kind, root) of a Caltech --data spec, or a clear error."""
    kind, root = parse_spec(base.data)
    ck = caltech_kind(kind)
    if ck is None:
        raise ValueError(f"this experiment needs --data caltech101:PATH or caltech256:PATH, "
                         f"got {base.data!r}")
    return ck[0], root


def _source(source_run):
    """(RunDir, config, net, checkpoint, path) of the pretrained net."""
    if not source_run:
        raise ValueError("this experiment needs --source RUN, the run folder of a pretrained net")
    run = RunDir(source_run)
    config = run.read_config()
    net, ckpt, path = run.load_net(flag="--source")
    return run, config, net, ckpt, path


def source_features(source_run, kind: str, root: str, layers, out, grid: int = 2,
                    batch_size: int = 64, log=print):
    """Features of every image of the Caltech tree under the source net: ({layer: (N, D)},
    the full Dataset). Cached by checkpoint (path, size, mtime), tree, layers and grid; a
    damaged cache file is recomputed (said with ``log``)."""
    run, config, net, ckpt, path = _source(source_run)
    crop = net.input_shape[1]
    size = stored_size(crop, config.get("resize"))
    full = load_caltech_all(root, kind, size, config.get("cache_dir"))
    st = os.stat(path)
    key = {"checkpoint": str(path.resolve()), "bytes": st.st_size, "mtime": st.st_mtime_ns,
           "data": os.path.abspath(root), "kind": kind, "files": len(full), "layers": list(layers),
           "grid": grid}
    images = ImageSource(full.images, ckpt["mean"], crop, full.labels,
                         scale=config.get("input_scale", 1.0))
    feats = cached_features(os.path.join(out, "features"), key,
                            lambda: layer_features(net, images, layers, grid, batch_size), log)
    return feats, full


def source_text(source, base: TrainConfig, scratch: bool) -> str:
    """The scale line of a Caltech table: the data, the pretrained run (its net, data, width and
    epochs, from its own folder), and the from-scratch recipe when those rows were trained."""
    run = RunDir(source)
    cfg, records = run.read_config(), run.read_metrics()
    last = records[-1] if records else {}
    text = (f"data `{base.data}`; pretrained net: the run {source} ({cfg['arch']} at width "
            f"{cfg.get('width', 1.0)}, trained on `{cfg['data']}` for {last.get('epoch', 0)} "
            f"epochs, val top-1 {100 * last.get('val_top1', float('nan')):.1f}%), its images "
            f"seen as it saw its own (stored side, centre crop, its mean image, input scale)")
    if scratch:
        text += "; from scratch: " + scale_text(base, base.arch)
    return text


def feature_layer(net) -> str:
    """The layer the classifier reads: the output of the layer before the last Linear (relu7 for
    zf; 'fixed layers 1-7' in the paper)."""
    return net.layers[-2].name if net.layers[-2].kind != "dropout" else net.layers[-3].name


def _mean_std(values) -> tuple:
    values = [100 * v for v in values]
    return float(np.mean(values)), float(np.std(values))


def pretrained_accuracies(feats, full, layer, n_train, splits, kind, classifier="softmax"):
    """Per split: mean per-class accuracy of a classifier on ``layer``'s features."""
    accs = []
    for s in range(splits):
        tr, te = split_rows(full, n_train, N_TEST[kind], seed=s)
        x = feats[layer]
        fit = softmax_accuracy if classifier == "softmax" else svm_accuracy
        accs.append(fit(x[tr], full.labels[tr], x[te], full.labels[te], full.num_classes))
    return accs


def _scratch(base, kind, root, n_train, splits, out, log):
    """Mean per-class accuracies of nets trained from scratch, one run folder per split; None
    when a Ctrl-C stopped one (its run saved where it stopped; the caller stops too)."""
    accs = []
    for s in range(splits):
        cfg = dataclasses.replace(base, data=f"{kind}-{n_train}:{root}", seed=s,
                                  out=os.path.join(out, f"scratch-{n_train}-split-{s}"))
        if train_row(cfg, log)["status"] == "interrupted":
            return None
        accs.append(RunDir(cfg.out).read_metrics()[-1]["val_class_mean_top1"])
    return accs


def table4(base: TrainConfig, out, log, source=None, splits: int = 5, train_sizes=None,
           scratch: bool = True, write: bool = True) -> dict:
    """Table 4 (``--data caltech101:PATH``) or Table 5 (``caltech256:PATH``); ``write``: write
    its results files (fig9 writes its own instead)."""
    kind, root = _caltech(base)
    sizes = train_sizes or ((15, 30) if kind == "caltech101" else (15, 30, 45, 60))
    _, _, net, _, _ = _source(source)
    layer = feature_layer(net)
    feats, full = source_features(source, kind, root, [layer], out, log=log)
    paper_rows = paper.TABLE4 if kind == "caltech101" else paper.TABLE5
    rows, interrupted = [], False
    for n in sizes:
        m, sd = _mean_std(pretrained_accuracies(feats, full, layer, n, splits, kind))
        rows.append({"row": f"pretrained, new softmax on {layer} (fixed layers)", "arch": net.arch,
                     "train_per_class": n, "accuracy": m, "std": sd, "splits": splits,
                     "paper": paper_rows.get(("pretrained", n))})
        if scratch:
            accs = _scratch(base, kind, root, n, splits, out, log)
            row = {"row": "trained from scratch", "arch": base.arch, "train_per_class": n,
                   "splits": splits, "paper": paper_rows.get(("scratch", n))}
            if accs is None:
                row["status"] = "interrupted"
            else:
                row["accuracy"], row["std"] = _mean_std(accs)
            rows.append(row)
            if accs is None:      # Ctrl-C: the row in training is saved; stop here (exit 130)
                interrupted = True
                log(f"interrupted while training from scratch at {n} per class; the table "
                    "holds the rows so far; run the same command again to continue")
                break
    result = {"experiment": "table4" if kind == "caltech101" else "table5",
              "title": ("Table 4: Caltech-101" if kind == "caltech101" else "Table 5: Caltech-256")
              + ", mean per-class accuracy (%)",
              "scale": source_text(source, base, scratch) + f"; {splits} random splits",
              "rows": rows, "orderings": _pretrained_beats_scratch(rows), "notes": []}
    if interrupted:
        result["interrupted"] = True
    if write:
        write_results(out, result, accuracy=True)
    return result


def _pretrained_beats_scratch(rows) -> list:
    out = []
    for n in sorted({r["train_per_class"] for r in rows}):
        pre = [r.get("accuracy") for r in rows if r["train_per_class"] == n and "pretrained" in r["row"]]
        scr = [r.get("accuracy") for r in rows if r["train_per_class"] == n and "scratch" in r["row"]]
        if pre and scr and None not in pre + scr:
            out.append({"claim": f"pretrained beats scratch by a wide margin (over 10 points) at {n} per class",
                        "holds": bool(pre[0] > scr[0] + 10),
                        "detail": f"measured {pre[0]:.1f} vs {scr[0]:.1f}; the paper (Caltech-101):"
                                  " 83.8 vs 22.8 at 15, 86.5 vs 46.5 at 30"})
    return out


def fig9(base: TrainConfig, out, log, source=None, splits: int = 5, train_sizes=None,
         scratch: bool = False) -> dict:
    """Fig. 9: accuracy against training images per class (pretrained; scratch with
    ``scratch``)."""
    kind, root = _caltech(base)
    sizes = train_sizes or ((5, 10, 15, 20, 25, 30) if kind == "caltech101" else (15, 30, 45, 60))
    result = table4(base, out, log, source, splits, sizes, scratch, write=False)
    result.update(experiment="fig9", title=f"Fig. 9: {kind} accuracy against training images "
                  "per class (%)")
    write_results(out, result, accuracy=True)
    _plot_curve(result, os.path.join(out, "fig9.png"))
    return result


def _plot_curve(result, path) -> None:
    import matplotlib.pyplot as plt

    from ..viz.plots import save_figure     # the Agg backend; the PNG written atomically

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label in sorted({r["row"] for r in result["rows"]}):
        pts = [(r["train_per_class"], r["accuracy"], r["std"]) for r in result["rows"]
               if r["row"] == label and r.get("accuracy") is not None]
        if pts:
            n, m, s = map(np.array, zip(*pts))
            ax.errorbar(n, m, yerr=s, marker="o", capsize=3, label=label)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("mean per-class accuracy (%)")
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=100)


def table7(base: TrainConfig, out, log, source=None, splits: int = 5, train_sizes=None,
           scratch: bool = False) -> dict:
    """Table 7: a linear SVM and a softmax on the features of each layer of the source net."""
    kind, root = _caltech(base)
    n = (train_sizes or (30 if kind == "caltech101" else 60,))[0]
    _, _, net, _, _ = _source(source)
    layers = [name for name in (f"relu{i}" for i in range(1, 8)) if name in
              {layer.name for layer in net.layers}]
    feats, full = source_features(source, kind, root, layers, out, log=log)
    rows = []
    for layer in layers:
        for clf in ("svm", "softmax"):
            m, sd = _mean_std(pretrained_accuracies(feats, full, layer, n, splits, kind, clf))
            rows.append({"row": f"{clf} on {layer}", "arch": net.arch, "train_per_class": n,
                         "accuracy": m, "std": sd, "splits": splits, "features": feats[layer].shape[1],
                         "paper": paper.TABLE7.get((kind, clf, int(layer[4:])))})
    svm = [r["accuracy"] for r in rows if r["row"].startswith("svm")]
    rising = all(b >= a - 1.0 for a, b in zip(svm, svm[1:]))
    result = {"experiment": "table7", "title": f"Table 7: {kind}, classifiers on each layer's "
              f"features, {n} training images per class, mean per-class accuracy (%)",
              "scale": source_text(source, base, False) + f"; {splits} random splits; conv maps "
              "max-pooled to 2x2 per map",
              "rows": rows, "notes": [],
              "orderings": [{"claim": "SVM accuracy rises with depth (each layer within 1 point "
                             "of the one below or above it)", "holds": rising,
                             "detail": "measured " + ", ".join(f"{a:.1f}" for a in svm)
                             + "; the paper (Caltech-101): 44.8 (layer 1) ... 86.2 (5), 85.5 (7)"}]}
    write_results(out, result, accuracy=True)
    return result


CALTECH_EXPERIMENTS = {"table4": table4, "table5": table4, "table7": table7, "fig9": fig9}
