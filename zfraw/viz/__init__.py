"""Deconvnet visualizations and the paper's analyses, one small module per job.

- topk: streaming k strongest activations per feature map over a dataset
- projection: one activation (or a map) projected to pixel space with net.project
- top9: Fig. 2 (top-9 projections beside their image patches)
- evolution: Fig. 4 (strongest projection per map across training checkpoints)
- filters: Sec. 4.1 / Fig. 6 (conv1 filters, dead and frequency-dominated filters, aliasing)
- occlusion: Fig. 7 (occlusion sweeps, in-box share of the probability drop)
- invariance: Fig. 5 (distances and class probability under translation, scale, rotation)
- correspondence: Table 1 (sign consistency of feature changes under part occlusion)
- images / plots / html: PNG grids (Pillow), matplotlib figures, the static report page
- source / datasets / forward: images as net inputs (ImageSource), the datasets they are read
  from (a run's, an imported net's, a --parts file's), a net's forward pass as the plain
  functions the analyses are written against
The report itself is assembled by :mod:`zfraw.report`; run folders are read by :mod:`zfraw.rundir`.
"""
