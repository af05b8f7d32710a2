"""SGD with momentum and weight decay, through the fused ``sgd_update`` primitive."""
from __future__ import annotations

from .. import backend, ops


class SGD:
    """v <- momentum*v - lr*(g + wd*w); w <- w + v, per parameter. Weight decay is not applied
    to biases. Velocities live on the parameters' device, keyed by qualified name."""

    def __init__(self, net, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"bad SGD settings lr={lr} momentum={momentum} "
                             f"weight_decay={weight_decay}")
        self.net, self.lr, self.momentum, self.weight_decay = net, lr, momentum, weight_decay
        self.velocity = {}

    def step(self) -> None:
        for name, p, g in self.net.params_and_grads():
            v = self.velocity.get(name)
            if v is None:
                v = self.velocity[name] = backend.get_array_module(p).zeros_like(p)
            wd = 0.0 if name.endswith(".b") else self.weight_decay
            ops.sgd_update(p, g, v, self.lr, self.momentum, wd)

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
