"""The atlas: every map of every conv layer of a net, browsable offline.

    python -m zfraw.atlas --run DIR [--data SPEC] [--out DIR]
    python -m zfraw.atlas --model MODEL.onnx --data SPEC [--preprocess PRESET] [--labels FILE]
    mpiexec -n 4 python -m zfraw.atlas --run DIR          # the pass shared by 4 ranks

Writes a static site (``DIR/atlas/index.html``, or ``MODEL's folder/atlas-<stem>/``) that is
opened from disk, with no server and no script: for each conv layer (after its ReLU, as the
paper's figures), a page with every map as a lazy-loaded thumbnail (its strongest deconv
projection), sorted by firing rate (the share of images on which the map's maximum is above
zero), dead maps and near-duplicate maps (per-image maxima correlating above 0.95) flagged and
counted; for each map, a page with its top-9 projections and the image patches under them (9
distinct images, the paper's Fig. 2), its firing rate and the distribution of its per-image
maxima, the classes of its top images, and, for a run that kept epoch checkpoints, its
strongest projection at each saved epoch over the report's Fig. 4 sample of training images;
links between neighbouring maps and layers; and ``atlas.json``, the index of every layer and map
with its files. The pictures are WebP.

One streaming pass over the validation images computes the top-9 and the per-image maxima of
every map of every layer at once, with a progress bar; it saves itself every ``--save-every``
images, so an interrupted atlas (Ctrl-C, a killed job) resumes where it was, and it is shared
over MPI ranks under ``mpiexec``. The net, its images and its layers are the report's
(:mod:`zfraw.report.subject`): the same images through the same input convention, the same
top-9 as the report's Fig. 2.
"""
# One module per job, read in this order:
#   options.py   the command line, and the report's options it becomes
#   scan.py      the one streaming pass: top-9 and per-image maxima, resumable, sharded
#   stats.py     firing rates, near-duplicates, histograms, classes
#   pages.py     the static pages (HTML, one stylesheet)
#   build.py     build_atlas (subject, pass, pictures, pages, atlas.json) and main
from .build import build_atlas, main
from .options import parse_args

__all__ = ["build_atlas", "main", "parse_args"]
