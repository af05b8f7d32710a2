"""The paper's experiments as commands: ``python -m zfraw.experiments NAME --data SPEC --out DIR``.

Each experiment is a set of ordinary run folders (resumable, reportable) plus a results table,
``DIR/<experiment>.json`` and ``DIR/<experiment>.md``, with the paper's numbers in the next column, the
scale used, and whether the paper's orderings hold at that scale.
"""
from .caltech import CALTECH_EXPERIMENTS
from .tables import TRAINING_EXPERIMENTS

EXPERIMENTS = {**TRAINING_EXPERIMENTS, **CALTECH_EXPERIMENTS}

__all__ = ["EXPERIMENTS", "CALTECH_EXPERIMENTS", "TRAINING_EXPERIMENTS"]
