"""The layer protocol shared by every layer.

A layer is a small, honest unit: ``forward(x)`` computes its output and keeps what its backward
and deconv need (named for what it is: ``self.cols``, ``self.switches``, ``self.scale``);
``backward(dy, need_dx=True)`` returns dx and fills ``self.grads`` (same keys as
``self.params``); ``deconv(r)`` is the paper's downward pass where one is defined. Shapes are
(N, C, H, W) for maps and (N, F) for vectors; ``output_shape`` works on per-example shapes (no
batch axis).
"""
from __future__ import annotations


class Layer:
    kind = "layer"
    saved: tuple = ()  # names of the arrays forward keeps for backward and deconv

    def __init__(self):
        self.name = self.kind
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True

    # -- the three passes -------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool = True):
        """dy, shaped like the last forward's output -> dx, shaped like its input; fills
        ``self.grads``. With ``need_dx=False`` (the lowest layer a training step visits: nobody
        reads the image's gradient) only the grads are filled and None is returned, so a layer
        can skip the input gradient's work (conv1's col2im over its largest tensor)."""
        raise NotImplementedError

    def deconv(self, r):
        """Project a signal shaped like this layer's output down to its input (the paper's
        deconvnet step). Layers without one raise."""
        raise NotImplementedError(f"{self.name}: {self.kind} has no deconv")

    def release(self) -> None:
        """Drop the arrays the last forward kept (``saved``). A Net calls it on every layer it is
        about to run, before any of them allocates, so that a step's new arrays take the memory
        of the last step's instead of coexisting with them."""
        for name in self.saved:
            setattr(self, name, None)

    # -- geometry, for the summary and the receptive field --------------------------------------
    def output_shape(self, in_shape: tuple) -> tuple:
        """Per-example output shape for a per-example input shape; raises on a bad input."""
        return tuple(in_shape)

    def window(self, in_shape: tuple) -> tuple[int, int, int, int]:
        """(kernel, stride, pad_top, pad_left) of this layer's spatial window, the same kernel
        and stride in both axes; (1, 1, 0, 0) when it has none. (The bottom and right pads do
        not move a receptive field: they only decide how many outputs there are.)"""
        return 1, 1, 0, 0

    def macs(self, in_shape: tuple) -> int:
        """Multiply-adds per example."""
        return 0

    # -- state beyond params (dropout's call counter) -------------------------------------------
    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def _error(self, message: str) -> ValueError:
        return ValueError(f"{self.name} ({self.kind}): {message}")

    def _check_maps(self, x, channels: int | None):
        """Raise a clear error unless x is (N, channels, H, W)."""
        if x.ndim != 4:
            raise self._error(f"expected a 4-d input (N, C, H, W), got shape {tuple(x.shape)}")
        if channels is not None and x.shape[1] != channels:
            raise self._error(f"expected {channels} input channels, got shape {tuple(x.shape)}")

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"
