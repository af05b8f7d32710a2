"""Batches for training and evaluation, optionally assembled one ahead in a background thread.

Each training epoch is fully determined by ``(seed, epoch)``: one RNG draws the permutation and
every image's crop offset and flip for that epoch, so an epoch can be restarted at any step and
give the same batches (this is what makes ``--resume`` exact).
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from .dataset import Dataset
from .transforms import crop_batch, eval_view, random_crop_params, scale_inputs, ten_crop


def _prefetch(gen, depth: int = 2):
    """Iterate ``gen`` in a daemon thread, ``depth`` items ahead; re-raises its errors here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run():
        try:
            for item in gen:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():           # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


class BatchLoader:
    """Mean-subtracted float32 batches (N, 3, crop, crop) and int64 labels from a :class:`Dataset`.

    mean: float32 (S, S, 3) per-pixel mean of the training set; crop: side of the net's input;
    scale: multiplies the mean-subtracted pixels (1 keeps the paper's 0..255 range).
    """

    def __init__(self, data: Dataset, mean: np.ndarray, crop: int, batch_size: int,
                 seed: int = 0, prefetch: bool = True, scale: float = 1.0):
        if crop > data.size:
            raise ValueError(f"crop {crop} is larger than the stored images ({data.size})")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.data, self.mean, self.crop = data, mean, crop
        self.batch_size, self.seed, self.prefetch, self.scale = batch_size, seed, prefetch, scale

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return scale_inputs(x, self.scale)

    def steps_per_epoch(self) -> int:
        """Training steps per epoch (the last incomplete batch is dropped)."""
        return max(1, len(self.data) // self.batch_size)

    def epoch_plan(self, epoch: int):
        """(order, oy, ox, flip) for one epoch, each (N,), from ``(seed, epoch)`` alone."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.data))
        oy, ox, flip = random_crop_params(rng, len(self.data), self.data.size, self.crop)
        return order, oy, ox, flip

    def train_batches(self, epoch: int, start_step: int = 0):
        """Yield ``(x, y)`` training batches of ``epoch`` from step ``start_step`` on."""
        order, oy, ox, flip = self.epoch_plan(epoch)
        b = self.batch_size

        def gen():
            for step in range(start_step, self.steps_per_epoch()):
                sel = order[step * b:(step + 1) * b]
                rows = np.sort(sel)  # memory-map reads in file order; labels follow the same rows
                x = crop_batch(self.data.images[rows], self.mean, oy[rows], ox[rows], flip[rows],
                               self.crop)
                yield self._scaled(x), self.data.labels[rows]

        return _prefetch(gen()) if self.prefetch else gen()

    def eval_batches(self, ten: bool = False):
        """Yield ``(x, y)`` over the whole set in order: x float32 (B, 3, C, C), the evaluation
        view (:func:`~zfraw.data.transforms.eval_view`), or (10, B, 3, C, C) with ``ten=True``."""
        def gen():
            for i in range(0, len(self.data), self.batch_size):
                imgs = np.asarray(self.data.images[i:i + self.batch_size])
                x = self._scaled(ten_crop(imgs, self.mean, self.crop)) if ten \
                    else eval_view(imgs, self.mean, self.crop, self.scale)
                yield x, self.data.labels[i:i + self.batch_size]

        return _prefetch(gen()) if self.prefetch else gen()
