"""The progress line of a training epoch, drawn by tqdm.

On a terminal tqdm redraws one line in place, at most every ``every`` seconds. Into a log file
(not a terminal) nothing is drawn while the epoch runs and one line is written at the end, in
tqdm's format, so logs stay readable.

What this wrapper adds to tqdm is :meth:`Progress.due`: the training loop reads the running
loss from the device (a GPU read waits for all queued work) only when the line is about to be
redrawn. ``due`` asks tqdm's own clock and last-draw time, so it says exactly what tqdm's next
``update`` will do; it never compares against a fixed origin such as the time since boot.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def _postfix(metrics: dict) -> str:
    """'loss 2.303  acc 0.1  1200 img/s' (``ips`` is images per second)."""
    return "  ".join(f"{v:.0f} img/s" if k == "ips" else f"{k} {v:.4g}" for k, v in metrics.items())


class Progress:
    """``bar = Progress(total, 'epoch 3/10')``; ``bar.update(step, loss=..., acc=..., ips=...)``
    after a step (every step, or only when ``bar.due(step)``); ``bar.close()`` at the end, which
    shows the last update's values. ``unit``: what is counted ('step'; the atlas's pass counts
    images); ``initial``: where a resumed loop starts (its rate counts the new work only)."""

    def __init__(self, total: int, desc: str, stream=None, every: float = 0.2,
                 unit: str = "step", initial: int = 0):
        self.total, self.desc, self.every, self.unit = total, desc, every, unit
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.step, self.first, self.metrics = initial, initial, {}
        self.start = time.monotonic()
        self.bar = None
        if self.live:
            self.bar = tqdm(total=total, desc=desc, file=self.stream, mininterval=every,
                            miniters=1, unit=unit, dynamic_ncols=True, leave=True,
                            initial=initial)

    def due(self, step: int) -> bool:
        """Whether ``update(step, ...)`` would redraw the line now: a caller whose metrics cost a
        device read can skip the read (and the update) when they would not be shown."""
        if self.bar is None:
            return False
        return step >= self.total or self.bar._time() - self.bar.last_print_t >= self.bar.mininterval

    def update(self, step: int, **metrics) -> None:
        """Record ``step`` and its metrics; redraw the line when :meth:`due`."""
        self.step, self.metrics = step, metrics
        if self.bar is None:
            return
        last = step >= self.total
        self.bar.set_postfix_str(_postfix(metrics), refresh=False)
        self.bar.update(step - self.bar.n)   # tqdm redraws when its interval has passed...
        if last:
            self.bar.refresh()               # ...and the final step is always shown

    def close(self) -> None:
        """End the line (a terminal keeps it; a log gets its one line now)."""
        if self.bar is not None:
            self.bar.close()
        elif self.step > self.first:
            line = tqdm.format_meter(self.step, self.total, time.monotonic() - self.start,
                                     prefix=self.desc, unit=self.unit,
                                     postfix=_postfix(self.metrics), initial=self.first)
            self.stream.write(line + "\n")
            self.stream.flush()
