"""The report's one pipeline, for a run and an imported net alike: the options make a subject
(:mod:`zfraw.report.subject`), the page opens with where its net and images come from, its input
convention, a run's training curves and the architecture, then the sections follow in
:data:`~zfraw.report.options.SECTIONS` order, each given plain values; ``main`` is the command
line around it."""
from __future__ import annotations

import time
from pathlib import Path

from .. import host
from ..checkpoint import OUT_OF_SPACE, os_error_line, write_error
from ..data import DataError
from ..rundir import check_out_folder
from ..viz.html import HtmlPage
from ..viz.images import MIN_TILE
from .options import SECTIONS, atlas_folder, check_source, parse_args
from .sections import (log, section_correspondence, section_evolution, section_filters,
                       section_invariance, section_occlusion, section_rules, section_top9,
                       section_training)
from .subject import Subject, subject_of


def build_report(args) -> Path:
    """Write the report for ``args`` (parsed options); returns the page's path. Raises
    ValueError (RunError, DataError, OnnxImportError) for a bad run, model or option."""
    check_source(args)
    if args.out:
        check_out_folder(args.out)        # before any work
    host.keep_freed_memory()  # top-9 and occlusion run many same-sized batches
    subject = subject_of(args)
    out = prepare_out(Path(args.out) if args.out else subject.out)
    page = HtmlPage(subject.title)
    try:
        opening(page, out, subject, atlas_folder(args) / "index.html")
        run_sections(section_steps(page, out, subject, args), args.skip)
        path = page.write(out / "index.html")        # last: it links the figures above
    except OSError as e:   # a full disk: each figure is whole (atomic), the page not updated
        index = out / "index.html"
        raise write_error(e.filename or out, e, "the figures written before it are whole and "
                          "no temporary file is left; " + (f"{index} is still the previous "
                          "report's page" if index.exists() else f"{index} was not written")
                          ) from None
    log(f"report written to {path}")
    return path


def prepare_out(out: Path) -> Path:
    check_out_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the report folder ({e.strerror})") \
            from None
    return out


def opening(page, out, s: Subject, atlas: Path) -> None:
    """What the report is about: the net and images, their input convention, the subject's
    notes (an imported net's classes and layers), a run's training curves, the architecture;
    where its atlas is (``atlas``: its index.html, linked when it exists)."""
    page.text(s.about)
    if atlas.exists():
        page.link(atlas, "its atlas", "Every map of every conv layer, with its top-9 and how it "
                  "formed in training: ", ".")
    else:
        page.text("Every map of every conv layer, with its top-9 and how it formed in training: "
                  f"the atlas, built by python -m zfraw.atlas (into {atlas.parent}; "
                  "docs/atlas.md).")
    page.heading("Input convention", 3)
    page.text(s.input_note)
    page.table(["field", "value"], s.source.spec.rows())
    for heading, text in s.notes:
        page.heading(heading, 3)
        page.text(text)
    if s.training is not None:
        section_training(page, out, s.training.metrics)
    page.heading("Architecture", 3)
    page.pre(s.net.summary_text())
    page.heading("How the figures are drawn", 3)
    page.text(f"Every image, projection and image patch is drawn at least {MIN_TILE} px wide: "
              "the pixel figures (Fig. 2, 4, 6, 8, the projection rules) enlarge small tiles "
              "by whole-pixel repetition (nearest neighbour), and the plotted figures (Fig. 5's "
              "strips, Fig. 7) draw their pictures with nearest-neighbour resampling, the "
              f"figure enlarged until its narrowest tile is {MIN_TILE} px. The page shows every "
              "figure at its own size (a wider one scrolls sideways). The conv1 filters "
              "themselves (Fig. 6) are drawn at least 36 px wide.")


def section_steps(page, out, s: Subject, args) -> dict:
    """{section name: step}: each section called with the subject's values and the options it
    reads; None where the subject has nothing to show (an imported net has no training run)."""
    net, source, layers = s.net, s.source, s.layers
    draw = dict(maps=args.maps, seed=args.seed, batch_size=args.batch_size,
                distinct=not args.top9_positions)  # how top-9 maps are drawn, as in Fig. 2
    topk = {}  # the top-9 pass's top activations, reused by the occlusion figures
    record = {"report": s.title}  # what the JSON files beside the page are about
    return {
        "filters": lambda: section_filters(page, out, net, source, layers["filters"], s.label,
                                           s.renorm, s.other, limit=args.limit, **draw),
        "rules": lambda: section_rules(page, out, net, source, layers["rules"]),
        "top9": lambda: section_top9(page, out, net, source, layers["top9"], topk,
                                     all_maps=args.all_maps, **draw),
        "evolution": None if s.training is None else lambda: section_evolution(
            page, out, net, s.training, layers["evolution"], n_images=args.evolution_images,
            n_maps=args.evolution_maps, seed=args.seed, batch_size=args.batch_size),
        "invariance": lambda: section_invariance(page, out, net, source, layers["invariance"],
                                                 s.truth, n_images=args.invariance_images,
                                                 batch_size=args.batch_size,
                                                 min_prob=args.invariance_min_prob),
        "occlusion": lambda: section_occlusion(
            page, out, net, source, layers["occlusion"], s.truth, topk,
            figures=args.occlusion_figures, stats=args.occlusion_stats,
            size=args.occlusion_size, stride=args.occlusion_stride,
            stats_stride=args.occlusion_stats_stride, batch_size=args.batch_size,
            min_prob=args.occlusion_min_prob, max_box=args.occlusion_max_box,
            validation=s.validation, record=record),
        "correspondence": lambda: section_correspondence(
            page, out, net, source, layers["correspondence"], args.parts, s.load_parts,
            n_images=args.correspondence_images, n_classes=args.correspondence_classes,
            draws=args.random_draws, seed=args.seed, batch_size=args.batch_size,
            record=record),
    }


def run_sections(steps: dict, skip) -> None:
    for name in SECTIONS:
        step = steps[name]
        if name in skip or step is None:
            continue
        t0 = time.perf_counter()
        log(f"report: {name} ...")
        step()
        log(f"report: {name} done in {time.perf_counter() - t0:.1f} s")


def main(argv=None) -> int:
    """The command line: 0 when the report is written; 2 with a one-line error (no traceback,
    unless --debug) for a bad run folder, checkpoint, model, dataset or option, an --out or a
    cache folder that cannot be written; 1 with a one-line error naming the file when the disk
    is full (the report's files are each whole, the page not updated); 130 on Ctrl-C."""
    args = parse_args(argv)
    try:
        build_report(args)
    except KeyboardInterrupt:
        log("report: stopped by Ctrl-C")
        return 130
    except (ValueError, DataError, OSError) as e:   # RunError, CheckpointError, DataError too
        if args.debug:
            import traceback
            traceback.print_exception(e)
        text = os_error_line(e) if isinstance(e, OSError) else str(e)
        log("error: " + " ".join(text.split()))  # one line, whatever the message holds
        return 1 if isinstance(e, OSError) and e.errno in OUT_OF_SPACE else 2
    return 0
