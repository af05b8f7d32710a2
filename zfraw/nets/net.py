"""A Net: an ordered list of named layers with forward, backward, projections and state."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import backend, ops
from ..layers import LocalResponseNorm, ReLU
from . import summary as _summary

RULES = ("deconv", "backprop", "guided")


class LastForward(NamedTuple):
    """How far the last completed forward went: ``until`` as passed (None: the whole net),
    ``stop`` the index of the last layer it ran, ``batch`` its N. Only layers 0..stop hold
    arrays of that forward; the ones after it may hold an older forward's."""
    until: str | None
    stop: int
    batch: int


class Net:
    """Layers applied in order. ``input_shape`` is the per-example (C, H, W).

    ``last_forward`` (a :class:`LastForward`, None before the first forward) records which
    layers hold the arrays of the last forward, so that backward and project refuse to start
    from a layer it did not reach (whose switches would be a stale forward's).
    """

    def __init__(self, layers, input_shape, num_classes, arch="custom"):
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.arch = arch
        self.shapes = _summary.propagate_shapes(self.layers, self.input_shape)
        self.last_forward: LastForward | None = None

    # -- lookup ----------------------------------------------------------------------------
    def index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"no layer named {name!r}; layers are "
                       f"{', '.join(layer.name for layer in self.layers)}")

    def layer(self, name: str):
        return self.layers[self.index(name)]

    def output_shape(self, name: str) -> tuple:
        """Per-example output shape of layer ``name``."""
        return self.shapes[self.index(name) + 1]

    # -- passes ----------------------------------------------------------------------------
    def forward(self, x, until: str | None = None, capture=()):
        """x: (N, C, H, W) -> logits (N, classes), or the output of layer ``until``.
        With ``capture`` (layer names), returns (output, {name: activation})."""
        want = f"(N, {', '.join(map(str, self.input_shape))})"
        if not hasattr(x, "ndim"):  # not converted: a list would cost a silent host copy
            raise TypeError(f"{self.arch}: forward needs an {want} numpy or cupy array, "
                            f"got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.arch}: expected input {want}, got shape {tuple(x.shape)}")
        stop = self.index(until) if until is not None else len(self.layers) - 1
        wanted = set(capture)
        for name in wanted:
            if self.index(name) > stop:
                raise ValueError(f"cannot capture {name!r}: it comes after {until!r}")
        captured, batch = {}, int(x.shape[0])
        self.last_forward = None  # from here until the end no forward is complete
        for layer in self.layers[:stop + 1]:
            layer.release()  # before anything is allocated: the new arrays reuse the old's memory
        for layer in self.layers[:stop + 1]:
            x = layer.forward(x)
            if layer.name in wanted:
                captured[layer.name] = x
        self.last_forward = LastForward(until, stop, batch)
        return (x, captured) if capture else x

    def _check_signal(self, what: str, index: int, signal) -> None:
        """Raise unless the last forward reached layer ``index`` and ``signal`` is shaped like
        that layer's output in it, batch included."""
        name = self.layers[index].name
        last = self.last_forward
        if last is None:
            raise ValueError(f"{what}({name!r}): no completed forward holds {name!r}'s arrays; "
                             f"run net.forward(x, until={name!r}) (or further) first")
        if index > last.stop:
            raise ValueError(f"{what}({name!r}): the last forward stopped at until={last.until!r},"
                             f" before {name!r}; run net.forward(x, until={name!r}) first")
        shape = getattr(signal, "shape", None)
        if shape is None:
            raise TypeError(f"{what}({name!r}): the signal must be an array, got "
                            f"{type(signal).__name__}")
        expected = (last.batch,) + tuple(self.output_shape(name))
        if tuple(shape) != expected:
            raise ValueError(f"{what}({name!r}): signal shape {tuple(shape)} does not match "
                             f"{expected}, the output of {name!r} in the last forward")

    def backward(self, dy, start: str | None = None, input_grad: bool = True):
        """Backpropagate dy (shaped like the output of ``start``, the last layer by default) to
        the input, filling every layer's grads on the way. Returns dx (N, C, H, W).

        Training needs no gradient for the image: with ``input_grad=False`` the walk stops at
        the lowest layer with parameters, which fills its grads only, and None is returned
        (for zf that skips conv1's col2im over its largest tensor)."""
        stop = self.index(start) if start is not None else len(self.layers) - 1
        self._check_signal("backward", stop, dy)
        lowest = 0
        if not input_grad:  # below the lowest layer with parameters there is nothing to fill
            lowest = next((i for i, layer in enumerate(self.layers) if layer.params), stop + 1)
        for i in range(stop, lowest - 1, -1):
            dy = self.layers[i].backward(dy, need_dx=input_grad or i > lowest)
        return dy if input_grad else None

    def project(self, name: str, signal, rule: str = "deconv"):
        """Project ``signal`` (shaped like the output of layer ``name`` in the last forward) to
        pixel space (N, C, H, W) with the switches of that forward. The rules differ only at
        ReLUs: 'deconv' rectifies the signal (the paper), 'backprop' masks it by the forward
        activation (the plain gradient), 'guided' does both (guided backprop). 'deconv' also
        skips contrast normalization; the other two use its exact gradient. No biases are used
        and no parameter gradients are touched."""
        if rule not in RULES:
            raise ValueError(f"unknown projection rule {rule!r}; choose one of {', '.join(RULES)}")
        index = self.index(name)
        self._check_signal("project", index, signal)
        r = signal
        for layer in reversed(self.layers[:index + 1]):
            if isinstance(layer, ReLU) and rule != "deconv":
                r = layer.backward(r)
                if rule == "guided":
                    r = ops.rectify(r)
            elif isinstance(layer, LocalResponseNorm) and rule != "deconv":
                r = layer.backward(r)
            else:
                r = layer.deconv(r)
        return r

    def deconv(self, name: str, signal):
        """The paper's deconvnet projection: :meth:`project` with rule 'deconv'."""
        return self.project(name, signal, "deconv")

    # -- modes, parameters, state ----------------------------------------------------------
    def train(self):
        for layer in self.layers:
            layer.training = True
        return self

    def eval(self):
        for layer in self.layers:
            layer.training = False
        return self

    def params_and_grads(self):
        """Yields (qualified name like 'conv1.W', param array, grad array)."""
        for layer in self.layers:
            for key, p in layer.params.items():
                yield f"{layer.name}.{key}", p, layer.grads[key]

    def num_params(self) -> int:
        return sum(int(p.size) for _, p, _ in self.params_and_grads())

    def state_dict(self) -> dict:
        """Host (NumPy) copies of every parameter, plus layers' extra state as
        'name.key' -> 0-d arrays (dropout call counters)."""
        state = {name: backend.to_host(p).copy() for name, p, _ in self.params_and_grads()}
        for layer in self.layers:
            for key, value in layer.extra_state().items():
                state[f"{layer.name}.{key}"] = np.asarray(value)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy parameters (and extra state) in; errors name any missing or misshapen entry."""
        for name, p, _ in self.params_and_grads():
            if name not in state:
                raise KeyError(f"state has no entry {name!r}")
            value = np.asarray(backend.to_host(state[name]))
            if value.shape != p.shape:
                raise ValueError(f"{name}: state shape {value.shape} != parameter shape {p.shape}")
            p[...] = backend.get_array_module(p).asarray(value, dtype=p.dtype)
        for layer in self.layers:
            extra = {k: state[f"{layer.name}.{k}"] for k in layer.extra_state()
                     if f"{layer.name}.{k}" in state}
            if extra:
                layer.load_extra_state(extra)

    def to(self, device: str):
        """Move parameters and gradients to 'cpu' or 'cuda' (in place); returns self."""
        for layer in self.layers:
            for d in (layer.params, layer.grads):
                for key in d:
                    d[key] = backend.to_device(d[key], device)
        return self

    def astype(self, dtype):
        """Cast parameters and gradients (float64 for gradient checks); returns self."""
        for layer in self.layers:
            for d in (layer.params, layer.grads):
                for key in d:
                    d[key] = d[key].astype(dtype)
        return self

    @property
    def device(self) -> str:
        for _, p, _ in self.params_and_grads():
            return backend.device_of(p)
        return "cpu"

    # -- geometry --------------------------------------------------------------------------
    def summary(self) -> list[dict]:
        """Per layer: name, kind, out_shape, params, macs, rf_size, rf_jump, rf_start."""
        return _summary.summarize(self)

    def summary_text(self) -> str:
        return _summary.format_summary(self)

    def receptive_field(self, name: str) -> tuple[int, int, int]:
        """(size, jump, start) of layer ``name``: the output at row y sees input rows
        [start + y*jump, start + y*jump + size) (padding included); columns alike, from the
        start that :meth:`rf_box` uses (it differs only where top and left pads differ)."""
        row = self.summary()[self.index(name)]
        return row["rf_size"], row["rf_jump"], row["rf_start"]

    def rf_box(self, name: str, y: int, x: int) -> tuple[int, int, int, int]:
        """Input-pixel box (y0, x0, y1, x1), half-open, of the output at (y, x) of layer
        ``name``. Not clipped: it may reach outside the image where padding was used."""
        row = self.summary()[self.index(name)]
        size, jump = row["rf_size"], row["rf_jump"]
        y0, x0 = row["rf_start"] + y * jump, row["rf_start_x"] + x * jump
        return y0, x0, y0 + size, x0 + size
