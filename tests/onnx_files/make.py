"""Write the small ONNX files in this folder with PyTorch's own exporters, and the outputs that
onnxruntime computes from them (``expected.npz``), so that the tests check zfraw's importer on
what PyTorch really writes even where PyTorch is not installed.

    python tests/onnx_files/make.py          # needs torch, onnx, onnxruntime (+ onnxscript for
                                             # the dynamo exporter's files, skipped without it)

The nets are tiny (8-16 maps, 32 x 32 input) with random weights and, for BatchNorm, random
running statistics, so that every constant matters:

- ``lrn``: conv 8@5x5/2, ReLU, LocalResponseNorm(5) *before* a ceil-mode 3x3/2 max pooling,
  conv 16@3x3 in 2 groups, ReLU, 3x3/2 pooling, LocalResponseNorm(3) *after* it, conv, ReLU,
  ceil-mode 2x2/2 pooling, fc, ReLU, dropout, fc (10 classes). Written by the TorchScript exporter
  at opsets 7, 9, 13 and its default (``lrn_default``), with a symbolic batch, once at opset 13
  with the batch fixed to 1, and by the dynamo exporter (``lrn_dynamo``).
- ``bn``: conv (no bias), BatchNorm2d, ReLU, pooling, grouped conv, BatchNorm2d, ReLU, ceil-mode
  pooling, fc, BatchNorm1d, ReLU, fc. TorchScript at opset 13 with ``do_constant_folding=False``
  (else it folds the conv BatchNorms itself), and dynamo (``bn_dynamo``, whose optimizer folds
  every BatchNorm into its Conv or Gemm before writing: a check of the dynamo form only).
- ``lrn_even``: a LocalResponseNorm of even size 4, which zfraw refuses (PyTorch's window is
  not ONNX's for even sizes): no expected output.

``expected.npz`` holds, under each file's stem, onnxruntime's output for ``inputs(shape)``.
"""
from __future__ import annotations

import io
import os
import sys
import warnings
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT = (3, 32, 32)
CLASSES = 10


def inputs(shape=INPUT, n=3, seed=0):
    """The images every file is checked on: (n, *shape) float32, roughly unit scale."""
    return (np.random.default_rng(seed).standard_normal((n, *shape)) * 2).astype(np.float32)


def lrn_net(torch, even=False):
    nn = torch.nn
    torch.manual_seed(1)
    if even:
        return nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 8, 3, stride=2, padding=1)), ("relu1", nn.ReLU()),
            ("norm1", nn.LocalResponseNorm(4, alpha=0.1, beta=0.75, k=2.0)),
            ("pool1", nn.MaxPool2d(4, 4)),
            ("flatten", nn.Flatten()), ("fc", nn.Linear(8 * 4 * 4, CLASSES))])).eval()
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 5, stride=2, padding=2)), ("relu1", nn.ReLU()),
        ("norm1", nn.LocalResponseNorm(5, alpha=0.1, beta=0.75, k=2.0)),
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1, groups=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("norm2", nn.LocalResponseNorm(3, alpha=0.05, beta=0.6, k=1.0)),
        ("conv3", nn.Conv2d(16, 16, 3, padding=1)), ("relu3", nn.ReLU()),
        ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(16 * 2 * 2, 32)), ("relu4", nn.ReLU()),
        ("drop", nn.Dropout()), ("fc2", nn.Linear(32, CLASSES))])).eval()


def bn_net(torch):
    nn = torch.nn
    torch.manual_seed(2)
    net = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)),
        ("bn1", nn.BatchNorm2d(8)),
        ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1, groups=2)), ("bn2", nn.BatchNorm2d(16)),
        ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(16 * 4 * 4, 16)),
        ("bn3", nn.BatchNorm1d(16)), ("relu3", nn.ReLU()), ("fc2", nn.Linear(16, CLASSES))]))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return net.eval()


def torchscript(torch, module, opset=None, batch="N", **kwargs):
    """The ModelProto that torch.onnx.export's TorchScript exporter writes (opset None: its
    default)."""
    import onnx

    buf = io.BytesIO()
    extra = {"dynamic_axes": {"x": {0: batch}, "logits": {0: batch}}} if batch == "N" else {}
    if opset is not None:
        extra["opset_version"] = opset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(1, *INPUT), buf, dynamo=False, input_names=["x"],
                          output_names=["logits"], **extra, **kwargs)
    return onnx.load_from_string(buf.getvalue())


def dynamo(torch, module):
    """The ModelProto of the dynamo exporter (torch.export, onnxscript) with a symbolic batch;
    None where onnxscript is not installed."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.zeros(2, *INPUT),), dynamo=True,
                                    input_names=["x"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("N")},))
    return program.model_proto


def models(torch):
    """{stem: ModelProto} of every file this script writes."""
    lrn, bn = lrn_net(torch), bn_net(torch)
    out = {
        "lrn_opset7": torchscript(torch, lrn, 7),
        "lrn_opset9": torchscript(torch, lrn, 9),
        "lrn_opset13": torchscript(torch, lrn, 13),
        "lrn_default": torchscript(torch, lrn),
        "lrn_batch1_opset13": torchscript(torch, lrn, 13, batch=1),
        "bn_opset13": torchscript(torch, bn, 13, do_constant_folding=False),
        "lrn_even": torchscript(torch, lrn_net(torch, even=True), 13),
    }
    for stem, module in (("lrn_dynamo", lrn), ("bn_dynamo", bn)):
        model = dynamo(torch, module)
        if model is not None:
            out[stem] = model
    return out


def main() -> int:
    import onnx
    import onnxruntime as ort
    import torch

    npz = os.path.join(HERE, "expected.npz")
    expected = dict(np.load(npz)) if os.path.exists(npz) else {}  # kept for files not rewritten
    written = models(torch)
    if "lrn_dynamo" not in written:
        print("onnxscript is not installed: the dynamo exporter's files are left as they are")
    for stem, model in written.items():
        onnx.checker.check_model(model)
        path = os.path.join(HERE, f"{stem}.onnx")
        onnx.save(model, path)
        print(f"{stem}.onnx: opset {model.opset_import[0].version}, "
              f"{os.path.getsize(path)} bytes, {model.producer_name} {model.producer_version}")
        if stem == "lrn_even":
            continue
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = inputs()
        if stem.startswith("lrn_batch1"):
            y = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
        else:
            y = sess.run(None, {"x": x})[0]
        module = bn_net(torch) if stem.startswith("bn") else lrn_net(torch)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        err = float(np.abs(y - want).max() / np.abs(want).max())
        assert err < 1e-4, (stem, err)  # onnxruntime computes what PyTorch computes
        expected[stem] = y
    np.savez(npz, **expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
