"""The architectures, as data: (name, kind, options) per layer, input shape, and a note.

Each conv block follows the paper: convolution, ReLU, 3x3 max pooling with stride 2, then
contrast normalization across feature maps (blocks 1 and 2). Channel counts and fc widths are
multiplied by ``width`` at build time (rounded, at least 1), so a narrower net keeps the
paper's structure exactly and only its width changes.
"""
from __future__ import annotations


def _block(i, out, k, stride, pad, pool=None, norm=False):
    layers = [(f"conv{i}", "conv", dict(out=out, k=k, stride=stride, pad=pad)),
              (f"relu{i}", "relu", {})]
    if pool is not None:
        layers.append((f"pool{i}", "pool", dict(k=3, stride=2, pad=pool)))
    if norm:
        layers.append((f"norm{i}", "lrn", {}))
    return layers


def _caffe_block(i, out, k, stride, pad, groups=1, norm=False, pool=False):
    """bvlc_alexnet's order: convolution, ReLU, then LRN BEFORE the 3x3/2 max pooling (the
    paper's blocks pool first)."""
    layers = [(f"conv{i}", "conv", dict(out=out, k=k, stride=stride, pad=pad, groups=groups)),
              (f"relu{i}", "relu", {})]
    if norm:  # Caffe's LRN: k=1, alpha/size scaling as ONNX's (zfraw/layers/norm.py)
        layers.append((f"norm{i}", "lrn", dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)))
    if pool:
        layers.append((f"pool{i}", "pool", dict(k=3, stride=2, pad=0)))
    return layers


def _head(fc):
    return [("flatten", "flatten", {}),
            ("fc6", "fc", dict(out=fc)), ("relu6", "relu", {}), ("drop6", "dropout", dict(p=0.5)),
            ("fc7", "fc", dict(out=fc)), ("relu7", "relu", {}), ("drop7", "dropout", dict(p=0.5)),
            ("fc8", "fc", dict(out="classes"))]


def _convs345(pool5_pad):
    return (_block(3, 384, 3, 1, 1) + _block(4, 384, 3, 1, 1)
            + _block(5, 256, 3, 1, 1, pool=pool5_pad))


ARCHITECTURES = {
    # Fig. 3: 224 -> conv1 7x7/2 pad 1 -> 110 -> pool -> 55 -> conv2 5x5/2 -> 26 -> pool -> 13
    # -> conv3..5 -> 13 -> pool -> 6; 6*6*256 = 9216 -> 4096 -> 4096 -> C.
    "zf": dict(input=(3, 224, 224), note="Zeiler & Fergus Fig. 3",
               layers=_block(1, 96, 7, 2, 1, pool=1, norm=True)
               + _block(2, 256, 5, 2, 0, pool=1, norm=True) + _convs345(0) + _head(4096)),
    # The paper's single-GPU replication of Krizhevsky et al.: conv1 11x11/4 (224 -> 55),
    # pool -> 27, conv2 5x5/1 pad 2 -> 27, pool -> 13; the rest as zf.
    "alexnet": dict(input=(3, 224, 224), note="Krizhevsky et al. as replicated in the paper",
                    layers=_block(1, 96, 11, 4, 2, pool=0, norm=True)
                    + _block(2, 256, 5, 1, 2, pool=0, norm=True) + _convs345(0) + _head(4096)),
    # Krizhevsky et al. as released (bvlc_alexnet / CaffeNet, the layout of the ONNX model zoo's
    # AlexNet), with its two-GPU halves as channel groups: 227 -> conv1 11x11/4 -> 55 -> norm ->
    # pool -> 27 -> conv2 5x5 pad 2, 2 groups -> 27 -> norm -> pool -> 13 -> conv3 (dense),
    # conv4 and conv5 (2 groups) -> 13 -> pool -> 6; 6*6*256 -> 4096 -> 4096 -> C. 61.0M
    # parameters at C=1000.
    "alexnet-grouped": dict(
        input=(3, 227, 227), note="Krizhevsky et al. as released (bvlc_alexnet), grouped",
        layers=_caffe_block(1, 96, 11, 4, 0, norm=True, pool=True)
        + _caffe_block(2, 256, 5, 1, 2, groups=2, norm=True, pool=True)
        + _caffe_block(3, 384, 3, 1, 1) + _caffe_block(4, 384, 3, 1, 1, groups=2)
        + _caffe_block(5, 256, 3, 1, 1, groups=2, pool=True) + _head(4096)),
    # 64x64 (Tiny ImageNet), about 224/3.5. The first layer keeps zf's idea of a small filter
    # and a small stride (5x5/1: 64 -> 64, pool -> 32); conv2 keeps stride 2 (-> 16, pool -> 8);
    # pool5 -> 3; 3*3*256 = 2304 -> 2048 -> 2048 -> C (fc halved: 2304 inputs, not 9216).
    "zf-64": dict(input=(3, 64, 64), note="zf scaled to 64x64",
                  layers=_block(1, 96, 5, 1, 2, pool=1, norm=True)
                  + _block(2, 256, 5, 2, 2, pool=1, norm=True) + _convs345(0) + _head(2048)),
    # alexnet scaled the same way: the larger, coarser first layer (7x7/2: 64 -> 32, pool -> 16)
    # and conv2 stride 1 (-> 16, pool -> 8), so that from pool2 on the shapes equal zf-64's and
    # the architecture-selection comparison isolates the first two layers, as in the paper.
    "alexnet-64": dict(input=(3, 64, 64), note="alexnet scaled to 64x64",
                       layers=_block(1, 96, 7, 2, 3, pool=1, norm=True)
                       + _block(2, 256, 5, 1, 2, pool=1, norm=True) + _convs345(0) + _head(2048)),
    # AlexNet's distinguishing first layer kept at 64 px: a large filter with stride 4 (11x11/4
    # pad 5: 64 -> 16), which is what aliases in the paper's Fig. 6 (d); then pool1 3x3 with
    # stride 1 (-> 16) and conv2 5x5/1 as AlexNet's (-> 16), pool2 3x3/2 (-> 8): from pool2 on
    # the shapes equal zf-64's, so the comparison isolates the first two layers.
    "alexnet-64s4": dict(input=(3, 64, 64), note="alexnet's 11x11/4 first layer at 64x64",
                         layers=[("conv1", "conv", dict(out=96, k=11, stride=4, pad=5)),
                                 ("relu1", "relu", {}),
                                 ("pool1", "pool", dict(k=3, stride=1, pad=1)),
                                 ("norm1", "lrn", {})]
                         + _block(2, 256, 5, 1, 2, pool=1, norm=True) + _convs345(0)
                         + _head(2048)),
    # 32x32: conv1 3x3/1 -> 32, pool -> 16; conv2 5x5/2 pad 2 -> 8, pool -> 4; conv3..5 -> 4;
    # pool5 pad 1 -> 2; 2*2*256 = 1024 -> 1024 -> 1024 -> C.
    "zf-32": dict(input=(3, 32, 32), note="zf scaled to 32x32",
                  layers=_block(1, 96, 3, 1, 1, pool=1, norm=True)
                  + _block(2, 256, 5, 2, 2, pool=1, norm=True) + _convs345(1) + _head(1024)),
}

ARCHS = tuple(ARCHITECTURES)


def get_spec(arch: str) -> dict:
    """The spec of an architecture: a base name, optionally followed by variants
    (``zf-64+no-fc67``, see :mod:`zfraw.nets.variants`); a clear error for an unknown name."""
    from .variants import apply_variants, split_name

    base, variants = split_name(arch)
    if base not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {base!r}; choose one of {', '.join(ARCHS)}")
    return apply_variants(ARCHITECTURES[base], arch) if variants else ARCHITECTURES[base]
