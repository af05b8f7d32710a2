"""The atlas's pipeline: the subject (the report's), the one streaming pass
(:mod:`zfraw.atlas.scan`), each map's pictures drawn by the report's own functions (top-9:
:func:`~zfraw.viz.top9.project_topk` and :func:`~zfraw.viz.top9.map_blocks`, as the report's
Fig. 2; evolution: :func:`~zfraw.viz.evolution.evolution_by_layer` and
:func:`~zfraw.viz.evolution.evolution_figure` over the report's Fig. 4 sample), the pages
(:mod:`zfraw.atlas.pages`) and ``atlas.json``, written last; and ``main``, the command line."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .. import distributed, host
from ..checkpoint import OUT_OF_SPACE, os_error_line, write_error
from ..data import DataError
from ..report.sections import log
from ..report.subject import subject_of
from ..rundir import check_out_folder
from ..viz.evolution import evolution_by_layer, evolution_figure
from ..viz.images import DISPLAY_PERCENTILE, save_webp, symmetric_uint8, write_file
from ..viz.top9 import map_blocks, project_topk
from . import pages
from .options import check_args, default_out, parse_args, report_args
from .scan import STATE_DIR, Stopped, remove_state, scan
from .stats import class_counts, firing_rates, histogram, near_duplicates

FORMAT = "zfraw-atlas/1"
K = 9                 # the paper's top-9
CHUNK = 16            # maps projected at a time (bounds the crops held in memory)


def layer_folder(name: str, taken: set) -> str:
    """A folder name for a layer: its name with anything but letters, digits, '_', '-' and
    '.' replaced (an imported graph's names can hold '/' or ':'), made unique."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    folder, i = base, 2
    while folder.lower() in taken:
        folder, i = f"{base}-{i}", i + 1
    taken.add(folder.lower())
    return folder


def map_info(layer, folder, m, tk, maxima, rates, dups, source) -> pages.MapInfo:
    """Map ``m``'s numbers: firing, near-duplicates, its top-9 (none for a dead map) and its
    top images' classes (those where it fired)."""
    fired = int((maxima[:, m] > 0).sum())
    top = []
    if fired:
        for r in range(tk.values.shape[1]):
            n = int(tk.image[m, r])
            if n < 0:
                continue
            top.append({"rank": r + 1, "image": n, "y": int(tk.y[m, r]), "x": int(tk.x[m, r]),
                        "value": float(tk.values[m, r]),
                        "class": str(source.names[int(source.labels[n])])})
    shown = [t["image"] for t in top if t["value"] > 0]
    return pages.MapInfo(
        layer=layer, index=m, rate=float(rates[m]), fired=fired, duplicates=dups[m], top=top,
        classes=class_counts(source.labels[shown], source.names) if shown else [],
        hist=histogram(maxima[:, m]), files={"page": f"{folder}/map-{m:04d}.html"})


def draw_layer(net, source, info: pages.LayerInfo, tk, picture, batch_size) -> None:
    """Each map's top-9 projections and patches (the report's Fig. 2 blocks) and its thumbnail
    (its strongest projection, at the receptive field's own size), CHUNK maps at a time."""
    live = [m.index for m in info.maps if not m.dead]
    for i in range(0, len(live), CHUNK):
        chunk = live[i:i + CHUNK]
        items = project_topk(net, source, info.name, tk, chunk, batch_size=batch_size)
        for m in chunk:
            mi = info.maps[m]
            stem = f"{info.folder}/map-{m:04d}"
            proj, patch = map_blocks(items[m], K)
            mi.files["top9"] = picture(proj, f"{stem}-top9.webp")
            mi.files["patches"] = picture(patch, f"{stem}-patches.webp")
            mi.files["thumb"] = picture(symmetric_uint8(items[m][0].proj, DISPLAY_PERCENTILE),
                                        f"{stem}-thumb.webp")


def draw_evolution(subject, infos, picture, n_images, batch_size) -> tuple:
    """Fig. 4 for every map: its strongest projection over the report's Fig. 4 sample of
    training images at each saved epoch, one strip per map. -> (epochs, note)."""
    training = subject.training
    if training is None or not training.epochs:
        why = ("an imported net has no training checkpoints" if training is None
               else "the run kept no epoch-NNN.npz checkpoints")
        for info in infos:
            for mi in info.maps:
                mi.evolution = f"No evolution: {why}."
        return [], ""
    train = training.images(n_images)
    maps = {info.name: list(range(len(info.maps))) for info in infos}
    evo = evolution_by_layer(training.snapshots(), train, maps, batch_size=batch_size)
    epochs = [e for e, _ in evo]
    for info in infos:
        strips = [(e, tiles[info.name]) for e, tiles in evo]
        for mi in info.maps:
            if all(t[mi.index] is None for _, t in strips):
                mi.evolution = (f"Silent at every saved epoch ({', '.join(map(str, epochs))}) "
                                f"on the {len(train)} training images.")
                continue
            fig = evolution_figure(strips, [mi.index], labels=True)
            mi.files["evolution"] = picture(fig, f"{info.folder}/map-{mi.index:04d}"
                                                 "-evolution.webp")
        del strips
    note = (f"At each saved epoch ({', '.join(map(str, epochs))}; labelled above), the map's "
            f"strongest activation over {len(train)} training images (the seeded sample of the "
            "report's Fig. 4, --evolution-images), projected with the deconvnet and cropped to "
            "its receptive field; grey: the map did not fire at that epoch.")
    return epochs, note


def atlas_index(subject, infos, result, epochs, picture_format) -> dict:
    """atlas.json: every layer and map with the files that show it (paths relative to the
    atlas folder) and its numbers."""
    return {
        "format": FORMAT, "title": subject.title, "about": subject.about,
        "images": result.images, "truth": subject.truth or "the dataset's classes",
        "epochs": epochs, "pictures": picture_format,
        "pass": {"seconds": round(result.seconds, 3), "ranks": result.ranks,
                 "resumed_at_image": result.resumed_at,
                 "peak_mib_per_rank": [round(v, 1) for v in result.peak_mib]},
        "index": "index.html", "style": "style.css",
        "layers": [{
            "name": info.name, "page": info.page, "maps": len(info.maps),
            "shape": list(info.shape), "receptive_field": info.rf, "dead": info.dead,
            "near_duplicates": info.duplicated, "duplicate_pairs": info.pairs,
            "map_list": [{
                "map": mi.index, "firing_rate": round(mi.rate, 6), "fired": mi.fired,
                "dead": mi.dead, "duplicates": [[o, round(r, 4)] for o, r in mi.duplicates],
                "files": dict(mi.files), "top9": mi.top, "classes": mi.classes,
            } for mi in info.maps]} for info in infos]}


def build_atlas(args) -> Path:
    """Write the atlas for ``args`` (parsed options); returns the path of its index.html (None
    on the ranks other than 0 of an MPI job, which share the pass only). Raises ValueError
    (RunError, DataError, OnnxImportError) for a bad run, model or option, :class:`Stopped`
    when Ctrl-C stopped the pass (saved)."""
    from PIL import features

    check_args(args)
    rargs = report_args(args)
    out = Path(args.out) if args.out else default_out(args)
    check_out_folder(out)
    if not features.check("webp"):
        raise ValueError("this Pillow was built without WebP support, which the atlas's "
                         "pictures need; install a Pillow wheel (pip install -U pillow)")
    host.keep_freed_memory()
    subject = subject_of(rargs)
    team = distributed.team()
    net, source, names = subject.net, subject.source, subject.layers["top9"]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the atlas folder ({e.strerror})") from None
    result = scan(net, source, names, out / STATE_DIR, k=K, batch_size=args.batch_size,
                  save_every=args.save_every, team=team)
    if team.rank != 0:
        return None
    log(f"atlas: the pass over {result.images} images took {result.seconds:.1f} s "
        f"({result.ranks} rank{'s' if result.ranks > 1 else ''}; peak memory "
        f"{max(result.peak_mib):.0f} MiB)")

    def picture(img, rel):
        save_webp(img, out / rel, quality=args.quality, lossless=args.lossless)
        return rel

    t0 = time.perf_counter()
    taken = set()
    infos = []
    for name in names:
        tk, maxima = result.topk[name], result.maxima[name]
        folder = layer_folder(name, taken)
        rates, dups = firing_rates(maxima), near_duplicates(maxima)
        shape = net.output_shape(name)
        info = pages.LayerInfo(name=name, folder=folder, shape=tuple(shape),
                               rf=int(net.receptive_field(name)[0]), maps=[
                                   map_info(name, folder, m, tk, maxima, rates, dups, source)
                                   for m in range(shape[0])])
        draw_layer(net, source, info, tk, picture, args.batch_size)
        infos.append(info)
        log(f"atlas: {name}: {len(info.maps)} maps, {info.dead} dead, {info.duplicated} "
            "near-duplicates")
    epochs, note = draw_evolution(subject, infos, picture, args.evolution_images,
                                  args.batch_size)
    title = "zfraw atlas: " + subject.title.partition(": ")[2]
    truth = subject.truth or "the dataset's classes"
    n = result.images
    for info in infos:
        write_text(out / info.page, pages.layer_page(title, info, infos, n))
        for mi in info.maps:
            write_text(out / mi.files["page"], pages.map_page(title, info, mi, infos, n, truth,
                                                              note))
    write_text(out / "style.css", pages.STYLE)
    passed = (f"One streaming pass over the {n} validation images kept every map's top-9 and "
              f"its maximum in each image ({result.seconds:.1f} s"
              + (f" after resuming at image {result.resumed_at}" if result.resumed_at else "")
              + f", {result.ranks} rank{'s' if result.ranks > 1 else ''}).")
    write_text(out / "index.html", pages.index_page(title, subject.about,
                                                    source.spec.rows(), infos, passed, epochs))
    fmt = "webp lossless" if args.lossless else f"webp quality {args.quality}"
    index = atlas_index(subject, infos, result, epochs, fmt)
    write_text(out / "atlas.json", json.dumps(index, indent=1) + "\n")   # last: it names the rest
    remove_state(out / STATE_DIR)
    log(f"atlas: pictures and pages in {time.perf_counter() - t0:.1f} s; written to "
        f"{out / 'index.html'}")
    return out / "index.html"


def write_text(path: Path, text: str) -> Path:
    return write_file(path, lambda f: f.write(text.encode("utf-8")))


def main(argv=None) -> int:
    """The command line: 0 when the atlas is written; 2 with a one-line error (no traceback,
    unless --debug) for a bad run folder, checkpoint, model, dataset or option, or an --out
    that cannot be written; 1 with a one-line error naming the file when the disk is full; 130
    on Ctrl-C (the pass saved: the same command resumes it)."""
    args = parse_args(argv)
    try:
        build_atlas(args)
    except Stopped as e:
        if distributed.team().rank == 0:
            log(f"atlas: stopped by Ctrl-C after {e.done} of {e.total} images; the pass is "
                f"saved in {e.path}: run the same command again to resume it")
        return 130
    except KeyboardInterrupt:
        log("atlas: stopped by Ctrl-C")
        return 130
    except (ValueError, DataError, OSError) as e:   # RunError, CheckpointError, DataError too
        if args.debug:
            import traceback
            traceback.print_exception(e)
        if isinstance(e, OSError) and e.errno in OUT_OF_SPACE:
            e = write_error(e.filename or "the atlas", e, "the files written before it are "
                            "whole; run the same command again once there is space")
        text = os_error_line(e) if isinstance(e, OSError) else str(e)
        log("error: " + " ".join(text.split()))
        return 1 if isinstance(e, OSError) and e.errno in OUT_OF_SPACE else 2
    return 0
