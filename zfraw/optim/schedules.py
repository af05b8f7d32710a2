"""Learning-rate schedules: a fixed step decay, and reduce-on-plateau, which mirrors the paper's
manual annealing ("annealed throughout training manually when the validation error plateaus")."""
from __future__ import annotations


class StepLR:
    """lr = base_lr * gamma ** (epoch // step_size); call ``step()`` once per epoch."""

    def __init__(self, opt, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.opt, self.step_size, self.gamma = opt, step_size, gamma
        self.base_lr, self.epoch = opt.lr, 0

    def step(self, metric=None) -> float:
        self.epoch += 1
        self.opt.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)
        return self.opt.lr

    def state_dict(self):
        return {"base_lr": self.base_lr, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.base_lr, self.epoch = float(state["base_lr"]), int(state["epoch"])


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when the metric (lower is better, e.g. validation error) has
    not improved by more than ``threshold`` for ``patience`` epochs; never below ``min_lr``."""

    def __init__(self, opt, factor: float = 0.1, patience: int = 2, threshold: float = 1e-4,
                 min_lr: float = 1e-6):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.opt, self.factor, self.patience = opt, factor, patience
        self.threshold, self.min_lr = threshold, min_lr
        self.best, self.bad_epochs = float("inf"), 0

    def step(self, metric: float) -> float:
        if metric < self.best - self.threshold:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.opt.lr = max(self.opt.lr * self.factor, self.min_lr)
                self.bad_epochs = 0
        return self.opt.lr

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
