"""Each primitive on the shapes it meets in the paper's zf net, for every registered impl.

The geometries are read from the built net (so they follow zfraw/nets/archs.py): im2col and
col2im of conv1..conv3, max pooling of pool1/pool2/pool5, average pooling on the same three
geometries (zf has none; an AveragePool in their place is the usual variant) and the global
average over pool5's input ("gap5": what an AdaptiveAvgPool2d(1) head reads), LRN of
norm1/norm2, ReLU of relu1
(the largest), dropout on fc6's output, the six Winograd transforms of conv3 (the first 3x3
stride-1 layer), the momentum update of fc6.W (the largest parameter) and the loss on (N, 1000).
Throughput is the bytes the primitive must move at least (its array inputs read once and its
outputs written once), so GB/s compares directly with the copy ceiling.

These are the benchmark shapes; the (small, edge-case) shapes on which every version is checked
against the reference are kernels/kernel_cases.py. ``python -m benchmarks.op NAME`` does both
for one primitive.
"""
from __future__ import annotations

import numpy as np

from kernels.kernel_cases import WINOGRAD_OPS
from zfraw import backend, nets
from zfraw.layers import Conv2d, Dropout, LocalResponseNorm, MaxPool2d
from zfraw.ops import registry

from . import torch_peer
from .timing import ceiling_device, measure


def impl_device(impl: str) -> str:
    """Where an impl's (or variant's) arrays live: the numpy reference is timed on the CPU."""
    return registry.impl_device(impl) or "cpu"


def usable_impls() -> list[str]:
    """Every impl that runs here (numpy, numba; cuda on a GPU machine)."""
    return [i for i in registry.IMPLS if registry.available(i)]


def _nbytes(values) -> int:
    out = 0
    for v in values if isinstance(values, (tuple, list)) else (values,):
        if hasattr(v, "nbytes") and getattr(v, "ndim", 0) > 0:
            out += int(v.nbytes)
    return out


def primitive_cases(batch: int, rng, ops=None) -> list[dict]:
    """[{"case", "op", "args", "bytes"}] with host (NumPy) float32 args; only the primitives in
    ``ops`` when it is given."""
    net = nets.build("zf", num_classes=1000)
    f32 = np.float32
    cases = []

    def want(*names):
        return ops is None or any(n in ops for n in names)

    def ref(op, *args):
        return registry.implementations(op)["numpy"](*args)

    def add(case, op, args, in_place=()):
        if not want(op):
            return
        moved = _nbytes(args) + _nbytes(ref(op, *args)) + _nbytes(in_place)  # in place: once more
        cases.append({"case": case, "op": op, "args": args, "bytes": moved})

    winograd_done = dropout_done = False
    last_pool = [layer.name for layer in net.layers if isinstance(layer, MaxPool2d)][-1]
    for layer, in_shape in zip(net.layers, net.shapes):
        shape = (batch,) + tuple(in_shape)
        if (isinstance(layer, Conv2d) and layer.name in ("conv1", "conv2", "conv3")
                and want("im2col", "col2im")):
            x = rng.standard_normal(shape, dtype=f32)
            geo = (layer.k, layer.k, layer.stride, layer.pad)
            add(layer.name, "im2col", (x,) + geo)
            if want("col2im"):
                add(layer.name, "col2im", (ref("im2col", x, *geo), shape) + geo)
        if (isinstance(layer, Conv2d) and layer.k == 3 and layer.stride == 1
                and layer.groups == 1 and not winograd_done):
            winograd_done = True
            if want(*WINOGRAD_OPS):
                _winograd(add, ref, layer, shape, rng)
        elif isinstance(layer, MaxPool2d):
            if want("maxpool_fwd", "maxpool_bwd"):
                x = rng.standard_normal(shape, dtype=f32)
                geo = (layer.k, layer.stride, layer.pad)
                add(layer.name, "maxpool_fwd", (x,) + geo)
                if want("maxpool_bwd"):
                    y, switches = ref("maxpool_fwd", x, *geo)
                    add(layer.name, "maxpool_bwd", (rng.standard_normal(y.shape, dtype=f32),
                                                    switches, shape) + geo)
            if want("avgpool_fwd", "avgpool_bwd"):
                geos = [(layer.name, (layer.k, layer.k, layer.stride, layer.pad))]
                if layer.name == last_pool:
                    geos.append(("gap5", (shape[2], shape[3], 1, 0)))
                for case, geo in geos:
                    x = rng.standard_normal(shape, dtype=f32)
                    add(case, "avgpool_fwd", (x,) + geo)
                    if want("avgpool_bwd"):
                        y = ref("avgpool_fwd", x, *geo)
                        add(case, "avgpool_bwd", (rng.standard_normal(y.shape, dtype=f32),
                                                  shape) + geo)
        elif isinstance(layer, LocalResponseNorm) and want("lrn_fwd", "lrn_bwd"):
            x = rng.standard_normal(shape, dtype=f32)
            hyper = (layer.size, layer.alpha, layer.beta)
            add(layer.name, "lrn_fwd", (x,) + hyper + (layer.bias,))
            if want("lrn_bwd"):
                y, scale = ref("lrn_fwd", x, *hyper, layer.bias)
                add(layer.name, "lrn_bwd", (rng.standard_normal(shape, dtype=f32), x, y, scale)
                    + hyper)
        elif layer.name == "relu1" and want("relu_fwd", "relu_bwd"):
            x = rng.standard_normal(shape, dtype=f32)
            add(layer.name, "relu_fwd", (x,))
            add(layer.name, "relu_bwd", (rng.standard_normal(shape, dtype=f32), np.maximum(x, 0)))
        elif isinstance(layer, Dropout) and not dropout_done and want("dropout_fwd"):
            dropout_done = True
            add(layer.name, "dropout_fwd", (rng.standard_normal(shape, dtype=f32), layer.p, 0))
    if want("sgd_update"):
        w = net.layer("fc6").params["W"]
        p, g, v = (rng.standard_normal(w.shape, dtype=f32) * 1e-2 for _ in range(3))
        add("fc6.W", "sgd_update", (p, g, v, 0.01, 0.9, 5e-4), in_place=(p, v))
    if want("softmax_xent", "softmax_xent_bwd"):
        logits = rng.standard_normal((batch, 1000), dtype=f32)
        labels = rng.integers(0, 1000, batch)
        add("fc8", "softmax_xent", (logits, labels))
        _, probs = ref("softmax_xent", logits, labels)
        add("fc8", "softmax_xent_bwd", (probs, labels))
    return cases


def _winograd(add, ref, layer, shape, rng):
    """The six F(2x2, 3x3) transforms of one 3x3 stride-1 conv layer, the arrays of its shapes."""
    from zfraw.ops.winograd import tile_grid

    f32 = np.float32
    x = rng.standard_normal(shape, dtype=f32)
    W = rng.standard_normal(layer.params["W"].shape, dtype=f32)
    F, C = W.shape[:2]
    oh, ow, th, tw = tile_grid(shape[2], shape[3], layer.pad)
    T = shape[0] * th * tw
    add(layer.name, "winograd_filter", (W,))
    add(layer.name, "winograd_filter_adjoint", (rng.standard_normal((16, F, C), dtype=f32),))
    add(layer.name, "winograd_input", (x, layer.pad))
    add(layer.name, "winograd_input_adjoint", (rng.standard_normal((16, C, T), dtype=f32), shape,
                                              layer.pad))
    add(layer.name, "winograd_output", (rng.standard_normal((16, F, T), dtype=f32), shape[0],
                                        oh, ow))
    add(layer.name, "winograd_output_adjoint",
        (rng.standard_normal((shape[0], F, oh, ow), dtype=f32),))


def _on_device(args, device):
    return tuple(backend.to_device(a, device) if isinstance(a, np.ndarray) else a for a in args)


def time_case(case: dict, impls, repeat: int, ceilings: dict, with_torch: bool) -> list[dict]:
    """Time one case (from :func:`primitive_cases`) for the named impls and variants (``numpy``
    among them) and the torch peer; one result row per candidate."""
    op, args = case["op"], case["args"]
    versions = registry.implementations(op)
    candidates = {}
    for impl in impls:
        device = impl_device(impl)
        dev_args = _on_device(args, device)
        candidates[impl] = ((lambda fn=versions[impl], a=dev_args: fn(*a)), device)
    if with_torch:
        candidates.update(torch_peer.primitive(op, args))
    times = measure(candidates, repeat=repeat, warmup=2, budget_s=20.0)
    rows = []
    for name, t in times.items():
        device = candidates[name][1]
        gbs = case["bytes"] / t["median_s"] / 1e9
        copy = ceilings[ceiling_device(device)]["copy_gbs"]
        rows.append({"case": case["case"], "op": op, "impl": name, "device": device,
                     "median_ms": t["median_s"] * 1e3, "min_ms": t["min_s"] * 1e3,
                     "runs": t["runs"], "bytes": case["bytes"], "gbs": gbs,
                     "frac_copy_ceiling": gbs / copy,
                     "speedup_vs_numpy": times["numpy"]["median_s"] / t["median_s"]})
    return rows


def run_primitives(batch: int, repeat: int, ceilings: dict, with_torch: bool,
                   log=print) -> list[dict]:
    """Time every case for every impl and variant (and the torch peer); one result row per
    (case, impl)."""
    rows = []
    for case in primitive_cases(batch, np.random.default_rng(0)):
        case_rows = time_case(case, registry.implementations(case["op"]), repeat, ceilings,
                              with_torch)
        rows += case_rows
        log(f"  {case['op']:17s} {case['case']:6s} " + "  ".join(
            f"{r['impl']} {r['median_ms']:8.2f} ms" for r in case_rows))
    return rows
