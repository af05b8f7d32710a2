"""Writes the PyTorch-exported ONNX files that tests/test_onnx_headless.py reads, so that a
machine without PyTorch still checks zfraw against what PyTorch's exporter really writes:

    python tests/onnx_files/make_headless.py      # needs torch and onnx; rewrites the files

- ``headless_trunk.onnx``: a convolutional trunk exported alone, no classifier: conv, ReLU,
  max pooling, conv, ReLU, nn.AvgPool2d(3, 2, padding=1) (PyTorch counts the padding in the
  divisor: count_include_pad=1), conv, ReLU; it ends in (16, 4, 4) feature maps.
- ``adaptive_avg_head.onnx``: a trunk with nn.AvgPool2d(3, 2, ceil_mode=True,
  count_include_pad=False), then nn.AdaptiveAvgPool2d(1) (written as GlobalAveragePool),
  Flatten and a Linear classifier over 5 classes.
- ``mean_head.onnx``: the same trunk, then ``x.mean((2, 3))`` (written as ReduceMean over axes
  2 and 3, at opset 18 with the axes as an input) and a Linear classifier.

Tiny widths (8 and 16 maps, 3x32x32 inputs: 3 RGB channels and a square side, as the report
reads), random weights from fixed seeds, PyTorch's TorchScript exporter (``dynamo=False``), a
symbolic batch. Each file is a few tens of KB. The tests compare zfraw's forward with
onnxruntime's on these files; ``torch_outputs`` below is what the torch-present test compares
with PyTorch itself.
"""
from __future__ import annotations

import inspect
import io
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
INPUT = (3, 32, 32)


class Mean(nn.Module):
    """``x.mean((2, 3))``: how many PyTorch models average their last maps."""

    def forward(self, x):
        return x.mean((2, 3))


def models() -> dict:
    """{file name: (module in eval mode, opset)}, each module's weights from its own seed."""
    out = {}
    torch.manual_seed(1)
    out["headless_trunk.onnx"] = (nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, padding=1),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()).eval(), 13)
    for seed, (name, pool, opset) in enumerate([
            ("adaptive_avg_head.onnx", nn.AdaptiveAvgPool2d(1), 13),
            ("mean_head.onnx", Mean(), 18)], start=2):
        torch.manual_seed(seed)
        head = [pool] + ([nn.Flatten()] if isinstance(pool, nn.AdaptiveAvgPool2d) else [])
        out[name] = (nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
            nn.AvgPool2d(3, 2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), *head, nn.Linear(16, 5)).eval(), opset)
    return out


def export(module, opset: int) -> bytes:
    """The module as ONNX bytes: input 'x' (N, 3, 32, 32), output 'y', the batch symbolic."""
    buf = io.BytesIO()
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(module, torch.zeros(1, *INPUT), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=opset, **extra)
    return buf.getvalue()


def torch_outputs(name: str, x):
    """PyTorch's own output for the module behind file ``name`` on x (a float32 NumPy array)."""
    module, _ = models()[name]
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def main():
    for name, (module, opset) in models().items():
        data = export(module, opset)
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes, opset {opset}")


if __name__ == "__main__":
    main()
