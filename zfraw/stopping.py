"""Ctrl-C as a request to stop at the next safe point, shared by the long loops that save their
state (the training loop of :mod:`zfraw.training`, the atlas's streaming pass of
:mod:`zfraw.atlas.scan`): the first Ctrl-C sets a flag that the loop reads between two units of
work (a step, a batch), where it saves and stops; a second Ctrl-C stops at once, without saving.
"""
from __future__ import annotations

import signal
import threading


class HardStop(KeyboardInterrupt):
    """A second Ctrl-C: stop at once, without saving. It can land in the middle of a unit of
    work (a weight update), so the state in memory may be half-updated; the last saved state is
    what is kept."""


class StopFlag:
    """Ctrl-C asks to stop at the next boundary between units of work (a weight update is never
    cut in half); a second Ctrl-C raises :class:`HardStop` at once, which the loop does not save
    on. Used as ``with StopFlag() as stop:`` (the SIGINT handler is installed in the main thread
    only, and the previous one is put back at the end).

    ``hard`` stays set after the second Ctrl-C: the exception can be raised where Python cannot
    pass it on (inside a generator being closed, a finalizer), and the loop checks the flag
    before it saves, so such a Ctrl-C still stops without saving."""

    def __init__(self):
        self.requested = False
        self.hard = False
        self.saved = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.hard = True
            raise HardStop
        self.requested = True

    def check_hard(self) -> None:
        """Raise :class:`HardStop` if a second Ctrl-C came, wherever it was raised."""
        if self.hard:
            raise HardStop

    def agree(self, team) -> None:
        """Make a stop asked on any rank of ``team`` asked on every rank. It only ever sets the
        flag, so a Ctrl-C that lands during the exchange is not lost."""
        if team.any(self.requested):
            self.requested = True

    def __exit__(self, *exc):
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)
