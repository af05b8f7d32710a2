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
addition), and the correspondence measure on object parts (Fig. 8, Table 1); the last two also
as ``occlusion_stats.json`` and ``correspondence.json`` beside the page. Images are drawn at
least 48 px wide, and the images that Fig. 5 and Fig. 7 show are picked by rules the page
states (docs/report.md). Every section
reads the validation images of the run's dataset (or ``--data``) through the net's input
convention (:class:`zfraw.nets.inputs.InputSpec`): for a run, centre crops minus its mean image
times its input scale; for a model, a ``--preprocess`` preset or the one its file records. A
model's report has no training or evolution sections, and picks its layers by type (the ReLU
after each conv, ...), since an imported graph's layer names are its own.
"""
# One module per job, read in this order:
#   options.py   the command line: the options and the checks that refuse a bad one early
#   subject.py   a run or an imported net made into one Subject (net, images, layers, truth,
#                title, parts, and a run's training metrics and checkpoints)
#   sections.py  the page's sections, one per figure of the paper, each from plain values
#   records.py   the sections' numbers as small JSON files beside the page
#   pipeline.py  build_report (subject, opening, the sections in order, index.html) and main
from .options import parse_args
from .pipeline import build_report, main

__all__ = ["build_report", "main", "parse_args"]
