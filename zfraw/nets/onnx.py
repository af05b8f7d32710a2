"""ONNX import and export of classification nets and of headless ones (a trunk that ends in
feature maps or features): ``load_onnx(path) -> Net``, ``save_onnx``.

The graph is read with the ``onnx`` package (``pip install zfraw[onnx]``), never by hand. What
imports is a single chain from the image input (a Softmax at the very end is recorded, not run),
of:

    Conv (group, pads, strides, auto_pad; square kernels, dilation 1)    -> Conv2d
    MaxPool (pads, strides, ceil_mode, auto_pad; square kernel)         -> MaxPool2d
    AveragePool (pads, strides, ceil_mode, count_include_pad, auto_pad;
                 square kernel)                                         -> AvgPool2d
    GlobalAveragePool, ReduceMean over axes (2, 3)                      -> GlobalAvgPool2d
                                                          (+ Flatten where keepdims=0)
    LRN (size >= 1)                                                     -> LocalResponseNorm
    PyTorch's LocalResponseNorm subgraph (Mul, Reshape, Pad, AveragePool,
      ... Pow, Div: both exporters, every opset; onnx_lrn.py), odd sizes -> LocalResponseNorm
    BatchNormalization (inference) right after a Conv or Gemm/MatMul    -> folded into it
    Relu                                                                -> ReLU
    Flatten (axis 1), Reshape to (N, -1)                                -> Flatten
    Gemm (transB, alpha, beta folded in), MatMul [+ Add bias]           -> Linear
    Dropout, Identity                                                   -> dropped (inference)

with weights from initializers or Constant nodes, for opsets 3 and up. Everything else (another
op, an attribute zfraw cannot honour, a dynamic spatial size, a branch) raises
:class:`OnnxImportError`, naming the node, its op and the attribute: a graph either imports
exactly or not at all. As a second guard, every layer's output shape is compared with ONNX's
own shape inference where that knows it. An empty or non-ONNX file, NaN or infinite weights
(the initializer named) and a graph whose activations for one image would exceed
``max_image_bytes`` (the layer and the estimate named) are refused the same way.

A chain is a classifier when it ends in a fully connected layer (Gemm, MatMul) or a Softmax
over a vector: then ``net.num_classes`` is the vector's length. Anything else is headless (a
convolutional trunk exported alone, a single Conv or MaxPool node, features from a global
average): ``net.num_classes`` is None, forward returns the last layer's output, and the analyses
that need class scores leave themselves out (the report says so).

The returned Net carries ``net.softmax_output`` (whether the graph ended in a Softmax; forward
still returns logits) and ``net.onnx_info``: the input and output names, opset, producer,
metadata_props and the source node of each layer. The input convention is not part of ONNX: a
file written by :func:`save_onnx` from a net with an ``input_spec`` (a
:class:`zfraw.nets.inputs.InputSpec`) records it in ``metadata_props['zfraw.input_spec']``, and
``load_onnx`` gives it back as ``net.input_spec`` (None for any other file).
"""
from __future__ import annotations

import inspect
import os
import re

import numpy as np

from ..layers import (AvgPool2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear,
                      LocalResponseNorm, MaxPool2d, ReLU)
from ..ops.conv import pad_spec
from .net import Net
from .onnx_lrn import TORCH_LRN, find_torch_lrns, read_torch_lrn

SUPPORTED_OPS = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean",
                 "LRN", "Gemm", "MatMul", "Add", "Flatten", "Reshape", "Dropout", "Identity",
                 "Softmax", "Constant", "BatchNormalization")
# Beside the ops: PyTorch's LocalResponseNorm subgraph (zfraw/nets/onnx_lrn.py) as one LRN.

# The most a graph's activations may take for one image (forward keeps every layer's output and
# what its backward and deconv need): a ZFNet at 224 x 224 needs about 35 MiB, a VGG-16 about
# 420 MiB; a graph over this limit is refused at import rather than failing later in a forward.
MAX_IMAGE_BYTES = 2 << 30

# Every attribute each op may carry (legacy ones included); any other is refused by name.
_ATTRS = {
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "Relu": {"consumed_inputs"},
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                "strides"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                    "pads", "strides"},
    "GlobalAveragePool": set(),
    "ReduceMean": {"axes", "keepdims", "noop_with_empty_axes"},
    "LRN": {"alpha", "beta", "bias", "size"},
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "MatMul": set(),
    "Add": {"axis", "broadcast", "consumed_inputs"},
    "Flatten": {"axis"},
    "Reshape": {"shape", "consumed_inputs", "allowzero"},
    "Dropout": {"ratio", "is_test", "consumed_inputs", "seed"},
    "Identity": set(),
    "Softmax": {"axis"},
    "BatchNormalization": {"epsilon", "momentum", "spatial", "is_test", "consumed_inputs",
                           "training_mode"},
    TORCH_LRN: set(),   # a PyTorch LocalResponseNorm subgraph, replaced by one node (onnx_lrn)
}

_FALLBACK = {"conv": "conv", "relu": "relu", "pool": "pool", "lrn": "norm", "fc": "fc",
             "flatten": "flatten", "avgpool": "avgpool", "gap": "gap"}


class OnnxImportError(ValueError):
    """The graph uses something zfraw cannot import exactly; the message names the node, its op
    and the attribute or input at fault."""


def _require_onnx():
    try:
        import onnx  # noqa: F401  (the package, not this module: imports are absolute)
        from onnx import numpy_helper  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX import/export needs the onnx package: "
                          "pip install 'zfraw[onnx]' (onnx and onnxruntime)") from e
    return onnx


# -- what this zfraw build's layers can do (probed, so the importer never guesses) ------------
def features() -> dict:
    """{'groups', 'asymmetric_pads', 'ceil_mode'}: whether Conv2d takes ``groups``, whether
    Conv2d and MaxPool2d take (top, left, bottom, right) padding, whether MaxPool2d takes
    ``ceil_mode``."""
    conv = inspect.signature(Conv2d).parameters
    pool = inspect.signature(MaxPool2d).parameters
    try:
        asym = (Conv2d(1, 1, 1, pad=(0, 0, 1, 1)).output_shape((1, 2, 2)) == (1, 3, 3)
                and MaxPool2d(2, 1, pad=(0, 0, 1, 1)).output_shape((1, 2, 2)) == (1, 2, 2))
    except Exception:  # an int-only build fails somewhere in its geometry
        asym = False
    return {"groups": "groups" in conv, "asymmetric_pads": bool(asym),
            "ceil_mode": "ceil_mode" in pool}


# -- import ---------------------------------------------------------------------------------
def load_onnx(source, max_image_bytes: int | None = MAX_IMAGE_BYTES) -> Net:
    """A zfraw Net (eval mode) from an ONNX file (a path) or an ``onnx.ModelProto``.

    Raises :class:`OnnxImportError` for anything it cannot import exactly (module docstring),
    for non-finite weights, and for a graph whose activations for one image would take more
    than ``max_image_bytes`` (None: no limit).
    """
    onnx = _require_onnx()
    if isinstance(source, onnx.ModelProto):
        model, where = source, source.graph.name or "<model>"
    else:
        where = os.fspath(source)
        model = _read_model(onnx, where)
    if not model.HasField("graph") and not model.opset_import:
        raise OnnxImportError(f"{where}: not an ONNX model (it has no graph and no opset)")
    importer = _Importer(onnx, model, where)
    importer.max_image_bytes = max_image_bytes
    return importer.run()


def _read_model(onnx, where: str):
    """The ModelProto in file ``where``; OnnxImportError for a missing, empty or non-ONNX file."""
    try:
        size = os.path.getsize(where)
    except OSError as e:
        raise OnnxImportError(f"{where}: cannot read an ONNX model: {e}") from e
    if size == 0:
        raise OnnxImportError(f"{where}: the file is empty (0 bytes), not an ONNX model")
    try:
        return onnx.load(where)
    except Exception as e:  # a protobuf decode error
        raise OnnxImportError(f"{where}: not an ONNX model (it does not parse as one: "
                              f"{type(e).__name__}: {e})") from e


class _Importer:
    def __init__(self, onnx, model, where):
        from onnx import numpy_helper

        self.onnx, self.model, self.graph, self.where = onnx, model, model.graph, where
        self.to_array = numpy_helper.to_array
        self.opset = self._opset()
        self.consts = {t.name: self.to_array(t) for t in self.graph.initializer}
        self.inferred = self._inferred_shapes()
        self.layers, self.sources, self.used_names = [], {}, set()
        self.counts: dict[str, int] = {}
        self.softmax = False
        self.implicit_flatten: list[str] = []  # Gemm nodes read as Caffe2's flattening FC
        self.torch_lrns: dict = {}             # output -> onnx_lrn.TorchLrn (PyTorch's LRN)
        self.torch_lrn_layers: dict[str, str] = {}  # layer name -> its subgraph's output
        self.folded_bn: dict[str, str] = {}    # BatchNormalization node -> the layer it is in
        self.max_image_bytes = MAX_IMAGE_BYTES

    # -- errors and small readers ------------------------------------------------------------
    def fail(self, node, message):
        if node is None:
            return OnnxImportError(f"{self.where}: {message}")
        label = node.name or "(unnamed)"
        return OnnxImportError(f"{self.where}: node {label!r} ({node.op_type}): {message}")

    def _opset(self):
        for imp in self.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                if imp.version < 3:
                    raise self.fail(None, f"opset {imp.version} is older than 3, the oldest "
                                          "zfraw imports")
                return int(imp.version)
        raise self.fail(None, "the model imports no version of the default ONNX opset")

    def _inferred_shapes(self):
        """name -> dims (int, or None where unknown) from onnx.shape_inference, {} if it fails."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model)
        except Exception:
            return {}
        shapes = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                   for d in t.shape.dim]
        return shapes

    @staticmethod
    def attrs(node):
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node, name, what):
        if name not in self.consts:
            raise self.fail(node, f"{what} {name!r} must be an initializer or a Constant")
        self._check_finite(node, name, what)
        return self.consts[name]

    def _check_finite(self, node, name, what):
        """Refuse a float initializer (or Constant) holding NaN or infinity, naming it."""
        a = np.asarray(self.consts[name])
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            raise self.fail(node, f"{what} {name!r} (an initializer or Constant) holds {nan} NaN "
                                  f"and {inf} infinite values among its {a.size}; zfraw "
                                  "imports finite weights only")

    def constant_value(self, node):
        a = self.attrs(node)
        if "value" in a:
            return self.to_array(a["value"])
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                           ("value_int", np.int64), ("value_ints", np.int64)):
            if key in a:
                return np.asarray(a[key], dtype)
        raise self.fail(node, f"attribute {', '.join(a) or '(none)'}: only value, value_float(s) "
                              "and value_int(s) constants are supported")

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> Net:
        graph = self.graph
        x_name, shape, batch = self._input()
        nodes = self._find_torch_lrns(list(graph.node))
        readers: dict[str, list[str]] = {}  # tensor -> who reads it (nodes, graph outputs)
        for node in nodes:
            for name in node.input:
                if name:
                    readers.setdefault(name, []).append(repr(node.name or node.op_type))
        for out in graph.output:
            readers.setdefault(out.name, []).append("the graph output")
        if len(graph.output) != 1:
            raise self.fail(None, f"the graph has {len(graph.output)} outputs "
                                  f"({', '.join(o.name for o in graph.output)}); a classifier "
                                  "has one")

        cur = x_name
        self.batch = batch
        for node in nodes:
            op = node.op_type
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"op {node.domain}.{op} is not a standard ONNX op")
            if op == "Constant":
                self.consts[node.output[0]] = self.constant_value(node)
                continue
            if op == "Identity" and node.input[0] in self.consts:  # an exporter's shared weight
                self.consts[node.output[0]] = self.consts[node.input[0]]
                continue
            if op not in _ATTRS:
                raise self.fail(node, f"op {op} is not supported (zfraw imports "
                                      f"{', '.join(SUPPORTED_OPS)})")
            unknown = sorted(set(self.attrs(node)) - _ATTRS[op])
            if unknown:
                raise self.fail(node, f"attribute {', '.join(unknown)} is not supported")
            data = [n for n in node.input if n and n not in self.consts]
            if not data:
                raise self.fail(node, "computes from constants only; zfraw imports a chain "
                                      "that starts at the graph input")
            if len(data) > 1:
                raise self.fail(node, f"has {len(data)} non-constant inputs "
                                      f"({', '.join(data)}): a branch; zfraw imports a single "
                                      "chain")
            if data[0] != cur:
                raise self.fail(node, f"reads {data[0]!r}, which is not the output of the "
                                      f"previous node ({cur!r}): a branch")
            if len(readers.get(cur, ())) != 1:
                raise self.fail(node, f"its input {cur!r} is used {len(readers[cur])} times (by "
                                      f"{', '.join(readers[cur])}): a branch, or an "
                                      "intermediate graph output")
            for extra in node.output[1:]:
                if extra and readers.get(extra):
                    raise self.fail(node, f"its second output {extra!r} is used; zfraw imports "
                                          "only the first")
            if self.softmax and op not in ("Identity", "Dropout"):
                raise self.fail(node, "comes after the Softmax; Softmax must end the graph")
            shape = self._node(node, op, shape)
            cur = node.output[0]
        if graph.output[0].name != cur:
            raise self.fail(None, f"the graph output {graph.output[0].name!r} is not the end of "
                                  f"the chain ({cur!r})")
        if not self.layers:
            raise self.fail(None, "the chain has no layer that computes anything (only "
                                  "Identity, Dropout or Softmax nodes)")
        self._check_layers()
        classifier = self._classifier(shape)
        input_shape = tuple(self.input_shape)
        name = graph.name or os.path.splitext(os.path.basename(str(self.where)))[0]
        net = Net(self.layers, input_shape, int(shape[0]) if classifier else None,
                  arch=f"onnx:{name}")
        net.eval()
        net.softmax_output = self.softmax
        net.onnx_info = {
            "source": str(self.where), "input_name": x_name, "output_name": cur,
            "batch": batch, "opset": self.opset, "ir_version": int(self.model.ir_version),
            "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
            "graph_name": graph.name, "doc_string": self.model.doc_string,
            "metadata": {p.key: p.value for p in self.model.metadata_props},
            "softmax_output": self.softmax, "nodes": dict(self.sources),
            "implicit_flatten": list(self.implicit_flatten),
            "classifier": classifier, "output_shape": tuple(int(d) for d in shape),
            "torch_lrn": {layer: self.torch_lrns[out].names
                          for layer, out in self.torch_lrn_layers.items()},
            "folded_batchnorm": dict(self.folded_bn),
        }
        net.input_spec = self._input_spec(net.onnx_info["metadata"])
        return net

    def _classifier(self, shape) -> bool:
        """Whether the chain ends in class scores: a vector from a fully connected layer, or
        any vector the graph puts through its closing Softmax. Otherwise the graph is headless
        (feature maps, or features such as a global average's or a hidden fc's ReLU): it
        imports all the same, with no classes."""
        return len(shape) == 1 and (self.softmax or isinstance(self.layers[-1], Linear))

    def _input_spec(self, metadata):
        """The InputSpec recorded by save_onnx in metadata_props, or None."""
        from .inputs import METADATA_KEY, InputSpec

        if METADATA_KEY not in metadata:
            return None
        try:
            spec = InputSpec.from_json(metadata[METADATA_KEY])
        except (ValueError, KeyError, TypeError) as e:
            raise self.fail(None, f"metadata_props {METADATA_KEY!r} is not a valid input "
                                  f"spec: {e}") from None
        if spec.crop != self.input_shape[1]:
            raise self.fail(None, f"metadata_props {METADATA_KEY!r} crops {spec.crop}, the "
                                  f"input is {self.input_shape[1]} wide")
        return spec

    def _input(self):
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise self.fail(None, f"the graph has {len(inputs)} non-constant inputs "
                                  f"({', '.join(i.name for i in inputs)}); zfraw needs one image "
                                  "input")
        vi = inputs[0]
        t = vi.type.tensor_type
        if t.elem_type != self.onnx.TensorProto.FLOAT:
            raise self.fail(None, f"input {vi.name!r} has element type "
                                  f"{self.onnx.TensorProto.DataType.Name(t.elem_type)}; zfraw "
                                  "imports float32 graphs")
        dims = list(t.shape.dim) if t.HasField("shape") else []
        if len(dims) != 4:
            raise self.fail(None, f"input {vi.name!r} must be 4-d (N, C, H, W), got "
                                  f"{len(dims) if dims else 'no'} dims")
        batch = dims[0].dim_value if dims[0].HasField("dim_value") else (dims[0].dim_param or "?")
        chw = []
        for axis, d in zip("CHW", dims[1:]):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise self.fail(None, f"input {vi.name!r} has a dynamic size "
                                      f"{d.dim_param or '?'!r} in {axis}; zfraw needs static C, "
                                      "H, W")
            chw.append(int(d.dim_value))
        self.input_shape = tuple(chw)
        return vi.name, tuple(chw), batch

    def _add(self, node, layer, shape, suffix="", check=True):
        """Name ``layer`` after ``node`` (sanitized, unique; op+index without a name) plus
        ``suffix``, check its output shape against ONNX's shape inference, append it; returns its
        output shape."""
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", node.name).strip("_")
        base = base + suffix if base else base
        if not base:
            prefix = _FALLBACK.get(layer.kind, layer.kind)
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            base = f"{prefix}{self.counts[prefix]}"
        name, i = base, 2
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        layer.name = name
        try:
            out = tuple(layer.output_shape(shape))
        except ValueError as e:
            raise self.fail(node, str(e)) from None
        if check:
            self._check_inferred(node, node.output[0], out)
        self.layers.append(layer)
        self.sources[name] = node.name
        return out

    def _check_inferred(self, node, tensor, out):
        dims = self.inferred.get(tensor)
        if dims is None or len(dims) != len(out) + 1:
            return
        for got, want in zip(dims[1:], out):
            if got is not None and got != want:
                raise self.fail(node, f"zfraw computes per-example shape {out} for "
                                      f"{tensor!r} but ONNX shape inference says {dims[1:]}")

    # -- ops ---------------------------------------------------------------------------------
    def _node(self, node, op, shape):
        a = self.attrs(node)
        if op in ("Identity", "Dropout"):
            if op == "Dropout" and len(node.input) > 2 and node.input[2]:
                if bool(np.asarray(self.const(node, node.input[2], "training_mode")).item()):
                    raise self.fail(node, "input training_mode is true; zfraw imports "
                                          "inference graphs")
            return shape
        if op == "Relu":
            return self._add(node, ReLU(), shape)
        if op == "Conv":
            return self._conv(node, a, shape)
        if op == "MaxPool":
            return self._maxpool(node, a, shape)
        if op == "AveragePool":
            return self._avgpool(node, a, shape)
        if op == "GlobalAveragePool":
            return self._add(node, GlobalAvgPool2d(), self._need_maps(node, shape))
        if op == "ReduceMean":
            return self._reduce_mean(node, a, shape)
        if op == "LRN":
            if "size" not in a:
                raise self.fail(node, "attribute size is required")
            if int(a["size"]) < 1:
                raise self.fail(node, f"attribute size={a['size']}: an LRN window needs size "
                                      ">= 1")
            layer = LocalResponseNorm(int(a["size"]), float(a.get("alpha", 1e-4)),
                                      float(a.get("beta", 0.75)), float(a.get("bias", 1.0)))
            return self._add(node, layer, self._need_maps(node, shape))
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            if axis not in (1, -len(shape)):  # -len(shape): axis 1 counted from the end
                raise self.fail(node, f"attribute axis={axis}: only axis 1 (keep the batch) is "
                                      "supported")
            return self._add(node, Flatten(), shape)
        if op == "Reshape":
            return self._reshape(node, a, shape)
        if op == "Gemm":
            return self._gemm(node, a, shape)
        if op == "MatMul":
            return self._matmul(node, shape)
        if op == "Add":
            return self._bias_add(node, a, shape)
        if op == TORCH_LRN:
            return self._torch_lrn(node, shape)
        if op == "BatchNormalization":
            return self._batchnorm(node, a, shape)
        if op == "Softmax":
            axis = int(a.get("axis", 1 if self.opset < 13 else -1))
            if len(shape) != 1 or axis not in (1, -1):
                raise self.fail(node, f"attribute axis={axis} on per-example shape {shape}: "
                                      "only a Softmax over the classes of (N, classes) is "
                                      "supported")
            self.softmax = True
            self._check_inferred(node, node.output[0], shape)
            return shape
        raise self.fail(node, f"op {op} is not supported")  # unreachable: _ATTRS lists the ops

    def _need_maps(self, node, shape):
        if len(shape) != 3:
            raise self.fail(node, f"needs (N, C, H, W) maps, got per-example shape {shape}")
        return shape

    def _spatial(self, node, a, name, default):
        """A per-axis attribute (kernel_shape, strides, dilations) as one int for both axes."""
        v = list(a.get(name, default))
        if len(v) != 2:
            raise self.fail(node, f"attribute {name}={v}: zfraw supports 2-d windows only")
        return v

    def _pads(self, node, a, shape, k, stride, ceil=False):
        """ONNX pads [top, left, bottom, right] (auto_pad resolved from the static size)."""
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4:
                raise self.fail(node, f"attribute pads={pads}: expected 4 values")
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size in shape[1:]:
                total = max((-(-size // stride) - 1) * stride + k - size, 0)
                small, big = total // 2, total - total // 2
                begin.append(small if auto == "SAME_UPPER" else big)
                end.append(big if auto == "SAME_UPPER" else small)
            pads = begin + end
        else:
            raise self.fail(node, f"attribute auto_pad={auto!r} is not an ONNX value")
        if any(p < 0 for p in pads):
            raise self.fail(node, f"attribute pads={pads}: negative padding is not supported")
        return [int(p) for p in pads], auto

    def _zfraw_pad(self, node, pads, what):
        """ONNX pads as a layer's ``pad``: an int when the four sides agree, else the 4-tuple
        (refused, naming the node, by a build whose layers take one padding only)."""
        pad = pad_spec(pads)
        if isinstance(pad, tuple) and not features()["asymmetric_pads"]:
            raise self.fail(node, f"attribute pads={pads} is asymmetric, and this zfraw "
                                  f"build's {what} takes one padding for every side")
        return pad

    def _conv(self, node, a, shape):
        c, _, _ = self._need_maps(node, shape)
        W = np.asarray(self.const(node, node.input[1], "weight"), np.float32)
        if W.ndim != 4:
            raise self.fail(node, f"weight {node.input[1]!r} has shape {W.shape}; expected "
                                  "(out, in/group, kh, kw)")
        kh, kw = self._spatial(node, a, "kernel_shape", W.shape[2:])
        if (kh, kw) != W.shape[2:]:
            raise self.fail(node, f"attribute kernel_shape={[kh, kw]} disagrees with the "
                                  f"weight's {W.shape[2:]}")
        sh = self._square_window(node, a, kh, kw, "kernels")
        group = int(a.get("group", 1))
        out_ch = W.shape[0]
        if group < 1 or c % group or out_ch % group or W.shape[1] * group != c:
            raise self.fail(node, f"attribute group={group} with weight {W.shape} does not fit "
                                  f"{c} input channels")
        if group != 1 and not features()["groups"]:
            raise self.fail(node, f"attribute group={group}: this zfraw build's Conv2d has no "
                                  "grouped convolution")
        pads, _ = self._pads(node, a, shape, kh, sh)
        kwargs = {"groups": group} if group != 1 else {}
        layer = Conv2d(c, out_ch, kh, sh, self._zfraw_pad(node, pads, "Conv2d"), **kwargs)
        b = np.zeros(out_ch, np.float32)
        if len(node.input) > 2 and node.input[2]:
            b = np.asarray(self.const(node, node.input[2], "bias"), np.float32)
            if b.shape != (out_ch,):
                raise self.fail(node, f"bias {node.input[2]!r} has shape {b.shape}, expected "
                                      f"({out_ch},)")
        layer.params["W"][...] = W
        layer.params["b"][...] = b
        return self._add(node, layer, shape)

    def _square_window(self, node, a, kh: int, kw: int, what: str) -> int:
        """The one stride of a Conv's or MaxPool's square window; refuses non-square kernels,
        unequal strides and dilations other than 1, naming the attribute."""
        if kh != kw:
            raise self.fail(node, f"attribute kernel_shape={[kh, kw]}: only square {what}")
        sh, sw = self._spatial(node, a, "strides", [1, 1])
        if sh != sw:
            raise self.fail(node, f"attribute strides={[sh, sw]}: only equal strides")
        dil = self._spatial(node, a, "dilations", [1, 1])
        if dil != [1, 1]:
            raise self.fail(node, f"attribute dilations={dil}: only dilation 1 is supported")
        return sh

    def _pool_window(self, node, a, shape):
        """A MaxPool's or AveragePool's window: (k, stride, pads, ceil_mode), checked."""
        self._need_maps(node, shape)
        if "kernel_shape" not in a:
            raise self.fail(node, "attribute kernel_shape is required")
        kh, kw = self._spatial(node, a, "kernel_shape", None)
        sh = self._square_window(node, a, kh, kw, "windows")
        pads, auto = self._pads(node, a, shape, kh, sh)
        return kh, sh, pads, bool(a.get("ceil_mode", 0)) and auto in ("NOTSET", "", "VALID")

    def _maxpool(self, node, a, shape):
        kh, sh, pads, ceil = self._pool_window(node, a, shape)
        kwargs = {}
        if ceil:
            if not features()["ceil_mode"]:
                raise self.fail(node, "attribute ceil_mode=1: this zfraw build's MaxPool2d has "
                                      "no ceil mode")
            kwargs["ceil_mode"] = True
        try:
            layer = MaxPool2d(kh, sh, self._zfraw_pad(node, pads, "MaxPool2d"), **kwargs)
        except ValueError as e:
            raise self.fail(node, str(e)) from None
        if ceil:
            self._ceil_mode_shapes(node, shape, kh, sh, pads)
        return self._add(node, layer, shape)

    def _avgpool(self, node, a, shape):
        """AveragePool as AvgPool2d: ONNX's pads, strides, ceil_mode and count_include_pad (the
        divisor counts the padding or not) are the layer's own."""
        kh, sh, pads, ceil = self._pool_window(node, a, shape)
        layer = AvgPool2d(kh, sh, self._zfraw_pad(node, pads, "AvgPool2d"), ceil_mode=ceil,
                          count_include_pad=bool(a.get("count_include_pad", 0)))
        if ceil:
            self._ceil_mode_shapes(node, shape, kh, sh, pads)
        return self._add(node, layer, shape)

    def _reduce_mean(self, node, a, shape):
        """ReduceMean over the two spatial axes (``x.mean((2, 3))``, some exporters' global
        average pooling) as GlobalAvgPool2d, followed by a Flatten where keepdims=0. The axes
        come from the attribute (opsets < 18) or the second input (18 and up)."""
        self._need_maps(node, shape)
        if "axes" in a:
            axes = [int(v) for v in a["axes"]]
        elif len(node.input) > 1 and node.input[1]:
            axes = [int(v) for v in np.asarray(
                self.const(node, node.input[1], "axes"), np.int64).reshape(-1)]
        else:
            axes = []
        if sorted(ax % 4 for ax in axes) != [2, 3]:
            noop = int(a.get("noop_with_empty_axes", 0))
            what = (f"axes={axes}" if axes else "no axes " + (
                "(noop_with_empty_axes=1: the identity)" if noop else "(a mean over every axis)"))
            raise self.fail(node, f"{what}: only a mean over the two spatial axes (2, 3) is "
                                  "supported (a global average pooling)")
        keepdims = bool(a.get("keepdims", 1))
        out = self._add(node, GlobalAvgPool2d(), shape, check=keepdims)
        if not keepdims:
            out = self._add(node, Flatten(), out, suffix="_flatten")
        return out

    def _ceil_mode_shapes(self, node, shape, k, stride, pads):
        """ONNX's shape inference rounds ceil mode up without dropping a last window that would
        start in the trailing padding; onnxruntime, PyTorch, Caffe and zfraw drop it. Where the
        two differ here, the inferred shapes from this node on are wrong: stop checking them."""
        dims = self.inferred.get(node.output[0])
        if dims is None:
            return
        unclamped = [-(-(size + pads[i] + pads[i + 2] - k) // stride) + 1
                     for i, size in enumerate(shape[1:])]
        if dims[2:] == unclamped:
            clamped = [n - 1 if (n - 1) * stride >= size + pads[i] else n
                       for i, (n, size) in enumerate(zip(unclamped, shape[1:]))]
            if clamped != unclamped:
                self.inferred = {}

    def _reshape(self, node, a, shape):
        if "shape" in a:  # opset < 5: the target is an attribute
            target = np.asarray(a["shape"], np.int64)
        else:
            if len(node.input) < 2 or not node.input[1]:
                raise self.fail(node, "has no shape input")
            target = np.asarray(self.const(node, node.input[1], "shape"), np.int64)
        target = [int(t) for t in target.reshape(-1)]
        allowzero = bool(a.get("allowzero", 0))
        features_ = int(np.prod(shape))
        first_ok = target[:1] in ([-1], [0]) if not allowzero else target[:1] == [-1]
        if isinstance(self.batch, int) and target[:1] == [self.batch]:
            first_ok = True
        ok = (len(target) == 2 and first_ok and target[1] in (-1, features_)
              and not (target[0] == -1 and target[1] == -1))
        if not ok:
            raise self.fail(node, f"shape {target} (allowzero={int(allowzero)}) on per-example "
                                  f"shape {shape}: only a reshape to (N, -1) is supported")
        return self._add(node, Flatten(), shape)

    def _linear(self, node, W, b, shape):
        """A Linear layer from W (out, in) and b (out,) over per-example (in,)."""
        if len(shape) != 1:
            raise self.fail(node, f"its input has per-example shape {shape} "
                                  f"({int(np.prod(shape))} values) and its weight "
                                  f"{W.shape[::-1]} (in, out): it needs (N, features), a "
                                  "Flatten or Reshape before it")
        if W.ndim != 2 or W.shape[1] != shape[0]:
            raise self.fail(node, f"weight (as (out, in)) {W.shape} does not fit {shape[0]} "
                                  "input features")
        layer = Linear(W.shape[1], W.shape[0])
        layer.params["W"][...] = W
        layer.params["b"][...] = b
        return self._add(node, layer, shape)

    def _bias(self, node, C, out, what):
        """A bias broadcast over (N, out) as (out,); refuses one that depends on the row."""
        C = np.asarray(C, np.float32)
        if C.size == 1:
            return np.full(out, C.reshape(-1)[0], np.float32)
        if C.shape in ((out,), (1, out)):
            return C.reshape(out)
        raise self.fail(node, f"{what} of shape {C.shape} is not a per-output bias ({out},)")

    def _gemm(self, node, a, shape):
        if int(a.get("transA", 0)):
            raise self.fail(node, "attribute transA=1 is not supported: the activation must be "
                                  "Gemm's A, untransposed")
        if node.input[0] in self.consts:
            raise self.fail(node, "input A is a constant; zfraw needs the activation as A")
        B = np.asarray(self.const(node, node.input[1], "input B"), np.float32)
        if B.ndim != 2:
            raise self.fail(node, f"input B has shape {B.shape}; expected a matrix")
        W = B if int(a.get("transB", 0)) else B.T                     # (out, in)
        W = W * np.float32(a.get("alpha", 1.0))
        if len(shape) == 3 and W.shape[1] == int(np.prod(shape)):
            # Gemm straight on (N, C, H, W) maps is not valid ONNX, but the zoo's oldest
            # Caffe2-converted files (bvlcalexnet-3, zfnet512-3, ...) have it: Caffe2's FC
            # flattens at axis 1, and with B's K = C*H*W that is the only reading that fits.
            self.implicit_flatten.append(node.name)
            shape = self._add(node, Flatten(), shape, suffix="_flatten", check=False)
        b = np.zeros(W.shape[0], np.float32)
        if len(node.input) > 2 and node.input[2]:
            C = self.const(node, node.input[2], "input C")
            b = self._bias(node, C, W.shape[0], "input C") * np.float32(a.get("beta", 1.0))
        return self._linear(node, W, b, shape)

    def _matmul(self, node, shape):
        if node.input[0] in self.consts:
            raise self.fail(node, "input A is a constant; zfraw needs the activation first")
        B = np.asarray(self.const(node, node.input[1], "input B"), np.float32)
        if B.ndim != 2:
            raise self.fail(node, f"input B has shape {B.shape}; expected an (in, out) matrix")
        return self._linear(node, B.T, np.zeros(B.shape[1], np.float32), shape)

    def _bias_add(self, node, a, shape):
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, Linear):
            raise self.fail(node, "Add is supported only as the bias of a MatMul or Gemm")
        bias = node.input[1] if node.input[0] not in self.consts else node.input[0]
        self._check_finite(node, bias, "bias")
        C = np.asarray(self.consts[bias], np.float32)
        if self.opset < 7 and int(a.get("broadcast", 0)) and C.ndim == 1 and C.size > 1:
            if int(a.get("axis", 1)) not in (1, -1):  # legacy: B aligned at `axis`
                raise self.fail(node, f"attribute axis={a['axis']}: the bias must align with "
                                      "the output features (axis 1)")
        last.params["b"][...] += self._bias(node, C, last.out_f, f"bias {bias!r}")
        self._check_inferred(node, node.output[0], shape)
        return shape

    # -- PyTorch's LocalResponseNorm subgraph (zfraw/nets/onnx_lrn.py) ---------------------------
    def _find_torch_lrns(self, nodes):
        """``nodes`` with each PyTorch LocalResponseNorm subgraph replaced by one TORCH_LRN
        node, read by :meth:`_torch_lrn` once the walk knows its input's shape."""
        nodes, self.torch_lrns = find_torch_lrns(
            nodes, self.consts, {o.name for o in self.graph.output}, self.fail)
        return nodes

    def _torch_lrn(self, node, shape):
        m = self.torch_lrns[node.output[0]]
        c, h, w = self._need_maps(m.div, shape)
        size, alpha, beta, k = read_torch_lrn(m, (c, h, w), self.batch, self.consts,
                                              self.opset, self.fail)
        shape = self._add(node, LocalResponseNorm(size, alpha, beta, k), shape)
        self.torch_lrn_layers[self.layers[-1].name] = node.output[0]
        return shape

    # -- BatchNormalization, folded into the Conv or Gemm before it -------------------------------
    def _batchnorm(self, node, a, shape):
        """Fold inference-mode BatchNormalization into the layer before it: with
        s = scale / sqrt(var + epsilon), W <- W * s per output and b <- (b - mean) * s + B
        (computed in float64). That layer must be a Conv or a Gemm/MatMul (Identity and Dropout
        between are inference no-ops); anything else is refused."""
        if int(a.get("training_mode", 0)):
            raise self.fail(node, "attribute training_mode=1: the batch's own statistics; zfraw "
                                  "imports inference graphs")
        if self.opset < 7 and not int(a.get("is_test", 0)):
            raise self.fail(node, f"attribute is_test={int(a.get('is_test', 0))}: the batch's own "
                                  "statistics; zfraw imports inference graphs (is_test=1)")
        if not int(a.get("spatial", 1)):
            raise self.fail(node, "attribute spatial=0: statistics per activation, not per "
                                  "channel; zfraw folds per-channel ones only")
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, (Conv2d, Linear)):
            after = (f"layer {last.name!r} ({type(last).__name__})" if last is not None
                     else "the graph input")
            raise self.fail(node, f"follows {after}; zfraw folds a BatchNormalization only into "
                                  "the Conv or Gemm right before it")
        if len(node.input) < 5 or not all(node.input[1:5]):
            raise self.fail(node, "needs its four inputs scale, B, mean and var")
        out = last.params["W"].shape[0]
        scale, B, mean, var = (
            np.asarray(self.const(node, name, what), np.float64).reshape(-1)
            for name, what in zip(node.input[1:5], ("scale", "B", "mean", "var")))
        for name, v in zip(node.input[1:5], (scale, B, mean, var)):
            if v.size != out:
                raise self.fail(node, f"input {name!r} holds {v.size} values; the "
                                      f"{type(last).__name__} before it has {out} outputs")
        eps = float(a.get("epsilon", 1e-5))
        if not (var + eps > 0).all():
            raise self.fail(node, f"input {node.input[4]!r} (var) plus epsilon={eps} is not "
                                  "positive everywhere")
        s = scale / np.sqrt(var + eps)
        W = np.asarray(backend_host(last.params["W"]), np.float64)
        b = np.asarray(backend_host(last.params["b"]), np.float64)
        last.params["W"][...] = (W * s.reshape((-1,) + (1,) * (W.ndim - 1))).astype(np.float32)
        last.params["b"][...] = ((b - mean) * s + B).astype(np.float32)
        self.folded_bn[node.name or f"BatchNormalization after {last.name}"] = last.name
        self._check_inferred(node, node.output[0], shape)
        return shape

    # -- what every imported net must pass -----------------------------------------------------
    def _check_layers(self):
        """Refuse non-finite parameters (after folding: Gemm's alpha, a BatchNormalization) and a
        graph whose activations for one image would exceed ``max_image_bytes``."""
        for layer in self.layers:
            for key, p in layer.params.items():
                if not np.isfinite(backend_host(p)).all():
                    raise self.fail(None, f"layer {layer.name!r} (node "
                                          f"{self.sources.get(layer.name)!r}): its {key} is not "
                                          "finite after import (its weights overflow float32)")
        if self.max_image_bytes is None:
            return
        total, shape = 0, tuple(self.input_shape)
        for layer in self.layers:
            out = tuple(layer.output_shape(shape))
            here, parts = _activation_bytes(layer, shape, out)
            total += here
            if total > self.max_image_bytes:
                raise self.fail(None, f"layer {layer.name!r} (node "
                                      f"{self.sources.get(layer.name)!r}) outputs per-example "
                                      f"shape {out}: for one image it keeps about "
                                      f"{_size(here)} ({parts}), {_size(total)} with the layers "
                                      f"before it, over the limit of "
                                      f"{_size(self.max_image_bytes)} of activations per image "
                                      "(max_image_bytes; the report's --max-image-mib)")
            shape = out


def backend_host(a):
    from .. import backend

    return backend.to_host(a)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _activation_bytes(layer, in_shape, out_shape):
    """(bytes, what they are) that ``layer``'s forward keeps for one image, float32: its output,
    plus a conv's im2col columns (in_ch*k*k per output position) or an LRN's scale."""
    out = int(np.prod(out_shape)) * 4
    if isinstance(layer, Conv2d):
        cols = int(in_shape[0]) * int(layer.k) ** 2 * int(np.prod(out_shape[1:])) * 4
        return out + cols, f"output {_size(out)}, im2col columns {_size(cols)}"
    if isinstance(layer, LocalResponseNorm):
        return 2 * out, f"output and scale {_size(out)} each"
    return out, f"output {_size(out)}"


# -- export ---------------------------------------------------------------------------------
# The oldest opset save_onnx writes: from 7 on, Gemm broadcasts its bias and Relu has no legacy
# attributes, so every opset from here to onnx's newest passes onnx.checker (opsets 7 and 8, IR
# version 3, list the initializers among the graph inputs, as that version requires).
SAVE_OPSET_MIN = 7


def save_onnx(net: Net, path, opset: int = 13, input_spec=None):
    """Write ``net`` as a standard ONNX graph (float32, batch dimension 'N') in ``opset``
    (SAVE_OPSET_MIN to onnx's newest) that passes ``onnx.checker`` and runs in onnxruntime:
    Conv (group, pads), Relu, MaxPool (pads, ceil_mode), AveragePool (pads, ceil_mode,
    count_include_pad), GlobalAveragePool, LRN, Flatten, Gemm (transB=1); Dropout is left out
    (inference). A headless net's output is its last layer's, named ``features``. A net loaded
    with ``softmax_output`` gets its Softmax back. ``input_spec`` (default: the net's
    ``input_spec`` attribute, if any) is recorded as JSON in metadata_props
    ``zfraw.input_spec``. Returns the ModelProto."""
    onnx = _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    from .. import backend
    from .inputs import METADATA_KEY

    newest = onnx.defs.onnx_opset_version()
    if not SAVE_OPSET_MIN <= opset <= newest:
        raise ValueError(f"opset {opset}: save_onnx writes opsets {SAVE_OPSET_MIN} to {newest}")
    info = getattr(net, "onnx_info", {}) or {}
    x = in_name = info.get("input_name") or "input"
    nodes, inits = [], []

    def weight(name, array):
        inits.append(numpy_helper.from_array(
            np.ascontiguousarray(backend.to_host(array), dtype=np.float32), name))
        return name

    for layer in net.layers:
        name, y = layer.name, layer.name
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Conv2d):
            k = int(layer.k)
            nodes.append(helper.make_node(
                "Conv", [x, weight(f"{name}.W", layer.params["W"]),
                         weight(f"{name}.b", layer.params["b"])], [y], name=name,
                kernel_shape=[k, k], strides=[int(layer.stride)] * 2, pads=list(layer.pads),
                dilations=[1, 1], group=int(getattr(layer, "groups", 1))))
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [x], [y], name=name))
        elif isinstance(layer, MaxPool2d):
            k = int(layer.k)
            extra = {}
            if getattr(layer, "ceil_mode", False):
                if opset < 10:
                    raise ValueError(f"{name}: ceil_mode needs opset 10 or later, got {opset}")
                extra["ceil_mode"] = 1
            nodes.append(helper.make_node(
                "MaxPool", [x], [y], name=name, kernel_shape=[k, k],
                strides=[int(layer.stride)] * 2, pads=list(layer.pads), **extra))
        elif isinstance(layer, AvgPool2d):
            k = int(layer.k)
            extra = {"count_include_pad": int(layer.count_include_pad)}
            if layer.ceil_mode:
                if opset < 10:
                    raise ValueError(f"{name}: ceil_mode needs opset 10 or later, got {opset}")
                extra["ceil_mode"] = 1
            nodes.append(helper.make_node(
                "AveragePool", [x], [y], name=name, kernel_shape=[k, k],
                strides=[int(layer.stride)] * 2, pads=list(layer.pads), **extra))
        elif isinstance(layer, GlobalAvgPool2d):
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y], name=name))
        elif isinstance(layer, LocalResponseNorm):
            nodes.append(helper.make_node(
                "LRN", [x], [y], name=name, size=int(layer.size), alpha=float(layer.alpha),
                beta=float(layer.beta), bias=float(layer.bias)))
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", [x], [y], name=name, axis=1))
        elif isinstance(layer, Linear):
            nodes.append(helper.make_node(
                "Gemm", [x, weight(f"{name}.W", layer.params["W"]),
                         weight(f"{name}.b", layer.params["b"])], [y], name=name,
                transB=1, alpha=1.0, beta=1.0))
        else:
            raise ValueError(f"{name}: save_onnx cannot write a {type(layer).__name__}")
        x = y
    if not nodes:
        raise ValueError("save_onnx: the net has no layers to write")
    # A headless net (no classifier: num_classes None) ends in its last layer's output.
    out_name = "logits" if net.num_classes is not None else "features"
    out_dims = [net.num_classes] if net.num_classes is not None else list(net.shapes[-1])
    nodes[-1].output[0] = out_name
    if getattr(net, "softmax_output", False):
        nodes.append(helper.make_node("Softmax", [out_name], ["prob"], name="prob", axis=1))
        out_name = "prob"
    graph = helper.make_graph(
        nodes, str(getattr(net, "arch", "zfraw")).replace("onnx:", "") or "zfraw",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", *net.input_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", *out_dims])],
        initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    ir_version = helper.find_min_ir_version_for(opsets)
    if ir_version < 4:  # IR 3 (opsets 7, 8): every initializer is also a graph input
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                           for t in inits)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="zfraw",
                              producer_version="0.1.0", ir_version=ir_version)
    meta = dict(info.get("metadata", {}))
    meta.setdefault("zfraw.arch", str(net.arch))
    spec = input_spec if input_spec is not None else getattr(net, "input_spec", None)
    meta.pop(METADATA_KEY, None)   # the net's own spec (if any) replaces a loaded file's
    if spec is not None:
        if spec.crop != net.input_shape[1]:
            raise ValueError(f"save_onnx: the input spec crops {spec.crop}, the net takes "
                             f"{net.input_shape[1]}")
        meta[METADATA_KEY] = spec.to_json()
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.fspath(path))
    return model


__all__ = ["MAX_IMAGE_BYTES", "OnnxImportError", "SAVE_OPSET_MIN", "SUPPORTED_OPS", "features",
           "load_onnx", "save_onnx"]
