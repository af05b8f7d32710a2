"""The paper's numbers (Zeiler & Fergus, arXiv 1311.2901), to stand beside zfraw's own results.

Errors are in percent. Table 2 and 3 are ImageNet 2012 validation (and training) errors; the
paper ran its Table 3 removals on its replication of Krizhevsky et al. (Sec. 5.1: "we first
explore the architecture of Krizhevsky et al."), whose Table 2 errors are 40.5 / 18.1.
"""
from __future__ import annotations

# Table 2: val top-1 / top-5 error, one net each.
TABLE2 = {
    "alexnet": {"val_top1_err": 40.5, "val_top5_err": 18.1},
    "zf": {"val_top1_err": 38.4, "val_top5_err": 16.5},
    "zf+conv345-wide": {"val_top1_err": 37.5, "val_top5_err": 16.0},
}

# Table 3: train top-1 / val top-1 / val top-5 error, keyed by zfraw's variant suffix. The
# removals are the paper's rows on its Krizhevsky replication, the fc6-7 widths (2048 and 8192
# units, half and double its 4096) and conv3-5 widths its rows on its own model (Fig. 3).
TABLE3 = {
    "": {"train_top1_err": 33.1, "val_top1_err": 38.4, "val_top5_err": 16.5},
    "+no-conv34": {"train_top1_err": 41.8, "val_top1_err": 45.4, "val_top5_err": 22.1},
    "+no-fc67": {"train_top1_err": 27.4, "val_top1_err": 44.8, "val_top5_err": 22.4},
    "+no-conv34+no-fc67": {"train_top1_err": 71.1, "val_top1_err": 71.3, "val_top5_err": 50.1},
    "+fc-half": {"train_top1_err": 38.2, "val_top1_err": 40.2, "val_top5_err": 17.6},
    "+fc-double": {"train_top1_err": 22.0, "val_top1_err": 38.8, "val_top5_err": 17.0},
    "+conv345-wide": {"train_top1_err": 18.8, "val_top1_err": 37.5, "val_top5_err": 16.0},
}

# Table 4: Caltech-101 mean per-class accuracy, (row, training images per class) -> (mean, std);
# std None where it is not quoted here.
TABLE4 = {
    ("scratch", 15): (22.8, None), ("scratch", 30): (46.5, None),
    ("pretrained", 15): (83.8, 0.5), ("pretrained", 30): (86.5, 0.5),
}

# Table 5: Caltech-256, pretrained (new softmax), 15 / 30 / 45 / 60 per class.
TABLE5 = {("pretrained", 15): (65.7, None), ("pretrained", 30): (70.6, None),
          ("pretrained", 45): (72.7, None), ("pretrained", 60): (74.2, None)}

# Table 7: (dataset, classifier, layer) -> accuracy; Caltech-101 at 30 per class, Caltech-256
# at 60. Only the layers quoted here (1, 5, 7 with the SVM; 7 with a softmax).
TABLE7 = {
    ("caltech101", "svm", 1): (44.8, None), ("caltech101", "svm", 5): (86.2, None),
    ("caltech101", "svm", 7): (85.5, None), ("caltech101", "softmax", 7): (85.4, None),
    ("caltech256", "svm", 1): (24.6, None), ("caltech256", "svm", 5): (65.6, None),
    ("caltech256", "svm", 7): (71.7, None), ("caltech256", "softmax", 7): (72.6, None),
}
