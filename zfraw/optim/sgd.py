"""SGD with momentum and weight decay, through the fused ``sgd_update`` primitive."""
from __future__ import annotations

from .. import backend, ops


class SGD:
    """v <- momentum*v - lr*(g + wd*w); w <- w + v, per parameter. Weight decay is not applied
    to biases. Velocities live on the parameters' device, keyed by qualified name.

    ``lr_mult`` ({layer name: factor}) scales the learning rate of that layer's parameters, as
    Caffe's per-layer ``lr_mult`` did in the paper's time; ``lr`` (which the schedules change)
    stays the base rate."""

    def __init__(self, net, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 lr_mult: dict | None = None):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"bad SGD settings lr={lr} momentum={momentum} "
                             f"weight_decay={weight_decay}")
        self.net, self.lr, self.momentum, self.weight_decay = net, lr, momentum, weight_decay
        self.lr_mult = dict(lr_mult or {})
        layers = {layer.name for layer in net.layers} if self.lr_mult else set()
        unknown = sorted(set(self.lr_mult) - layers)
        if unknown or any(not f > 0 for f in self.lr_mult.values()):
            raise ValueError(f"bad lr_mult {self.lr_mult}: each factor must be positive and "
                             f"each name a layer of the net ({', '.join(unknown)} is not)"
                             if unknown else f"bad lr_mult {self.lr_mult}: factors must be > 0")
        self.velocity = {}

    def step(self) -> None:
        for name, p, g in self.net.params_and_grads():
            v = self.velocity.get(name)
            if v is None:
                v = self.velocity[name] = backend.get_array_module(p).zeros_like(p)
            wd = 0.0 if name.endswith(".b") else self.weight_decay
            lr = self.lr * self.lr_mult.get(name.rpartition(".")[0], 1.0)
            ops.sgd_update(p, g, v, lr, self.momentum, wd)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "velocity": {k: backend.to_host(v).copy() for k, v in self.velocity.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.momentum = float(state["lr"]), float(state["momentum"])
        self.weight_decay = float(state["weight_decay"])
        params = {name: p for name, p, _ in self.net.params_and_grads()}
        self.velocity = {}
        for k, v in state["velocity"].items():
            if k not in params:
                raise KeyError(f"optimizer state has velocity for unknown parameter {k!r}")
            xp = backend.get_array_module(params[k])
            self.velocity[k] = xp.asarray(v, dtype=params[k].dtype)
