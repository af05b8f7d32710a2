"""Datasets, the paper's preprocessing, and fast batches for zfraw.

- :mod:`.synthetic`: the built-in ``synthetic`` dataset (ten shapes on cluttered backgrounds).
- :mod:`.tiny_imagenet`, :mod:`.folders`, :mod:`.caltech101`: real datasets in their on-disk
  layouts, decoded once (:mod:`.images`) into a memory-mapped uint8 cache (:mod:`.dataset`).
- :mod:`.transforms`: the stored image side (:func:`stored_size`), mean image, random crops +
  flips, the evaluation view (:func:`eval_view`: centre crop - mean, times the input scale) and
  ten-crop views.
- :mod:`.batches`: deterministic per-epoch batches with background prefetch.
- :mod:`.spec`: ``synthetic``, ``synthetic:N``, ``tiny-imagenet:PATH``, ``folder:PATH``,
  ``caltech101[-N]:PATH``, ``caltech256[-N]:PATH``.

Bad input policy: unreadable image files are skipped with a warning that names each one
(``on_error='warn'``, the default) or raise :class:`DataError` listing them (``'raise'``). A
class that is declared but has no images (a wnid without a folder, an empty class folder) is
always a :class:`DataError`, since class indices would silently shift or a class never train;
so is a class whose every training file is unreadable (in an evaluation split that class only
gets a warning: it is not evaluated).
"""
from .batches import BatchLoader
from .caltech101 import (load_caltech101, load_caltech256, load_caltech_all,
                         mean_per_class_accuracy, split_rows)
from .dataset import (Dataset, build_dataset, concatenate, default_cache_dir, hold_out,
                      subset)
from .folders import load_folder
from .images import DataError, load_rgb
from .spec import load_spec, parse_spec
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import make_synthetic, synthetic_splits
from .tiny_imagenet import load_tiny_imagenet
from .transforms import (center_crop, center_offset, crop_batch, eval_view, mean_image,
                         stored_size, ten_crop, ten_crop_offsets)

__all__ = ["BatchLoader", "DataError", "Dataset", "SYNTHETIC_CLASSES", "build_dataset",
           "center_crop", "center_offset", "concatenate", "crop_batch", "default_cache_dir",
           "eval_view", "hold_out", "load_caltech101", "load_caltech256", "load_caltech_all",
           "load_folder", "load_rgb", "load_spec", "load_tiny_imagenet", "make_synthetic",
           "mean_image", "mean_per_class_accuracy", "parse_spec", "split_rows", "stored_size",
           "subset", "synthetic_splits", "ten_crop", "ten_crop_offsets"]
