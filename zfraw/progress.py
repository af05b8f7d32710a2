"""A small progress bar for training epochs (no dependency): one line, rewritten in place on a
terminal, printed once at the end otherwise (so logs stay readable)."""
from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """``bar = Progress(total, 'epoch 3/10')``; ``bar.update(step, loss=..., acc=..., ips=...)``
    after a step (every step, or only when ``bar.due(step)``); ``bar.close()`` at the end, which
    prints the last update's line. ``ips`` is shown as images/s."""

    def __init__(self, total: int, desc: str, stream=None, width: int = 24, every: float = 0.2):
        self.total, self.desc, self.width, self.every = total, desc, width, every
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.line = ""

    def _render(self, step: int, metrics: dict) -> str:
        frac = step / self.total if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        parts = [f"{self.desc} [{'#' * filled}{'.' * (self.width - filled)}] {step}/{self.total}"]
        for key, value in metrics.items():
            parts.append(f"{key} {value:.0f} img/s" if key == "ips" else f"{key} {value:.4g}")
        parts.append(f"{_clock(elapsed)}<{_clock(eta)}")
        return "  ".join(parts)

    def due(self, step: int) -> bool:
        """Whether ``update(step, ...)`` would redraw the line now: a caller whose metrics cost a
        device read can skip the read (and the update) when it would not be shown."""
        return self.live and (time.perf_counter() - self.last_draw >= self.every
                              or step == self.total)

    def update(self, step: int, **metrics) -> None:
        """Record the line for ``step``; redraw it when :meth:`due` (at most every ``every`` s)."""
        self.line = self._render(step, metrics)
        if self.due(step):
            self.stream.write("\r" + self.line + "\x1b[K")
            self.stream.flush()
            self.last_draw = time.perf_counter()

    def close(self) -> None:
        if self.line:
            self.stream.write(("\r" + self.line + "\x1b[K\n") if self.live else self.line + "\n")
            self.stream.flush()
