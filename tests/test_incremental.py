"""Incremental occlusion equals the full forward of every occluded copy."""
import numpy as np
import pytest

from zfraw.nets import Net, build, build_layers
from zfraw.viz.forward import probs_and_features, probs_and_map
from zfraw.viz.incremental import IncrementalOcclusion
from zfraw.viz.occlusion import occlude, occlusion_sweep, square_boxes


def odd_geometry_net():
    """Asymmetric padding, a ceil-mode pool, groups, LRN before pooling, pool after a pool."""
    specs = [("conv1", "conv", dict(out=8, k=5, stride=2, pad=[2, 1, 1, 2])),
             ("relu1", "relu", {}), ("norm1", "lrn", {}),
             ("pool1", "pool", dict(k=3, stride=2, pad=0, ceil_mode=True)),
             ("conv2", "conv", dict(out=8, k=3, stride=1, pad=1, groups=2)), ("relu2", "relu", {}),
             ("pool2", "pool", dict(k=2, stride=1, pad=[0, 0, 1, 1])),
             ("flatten", "flatten", {}), ("fc", "fc", dict(out="classes"))]
    net = Net(build_layers(specs, (3, 29, 27), 5), (3, 29, 27), 5, "odd")
    rng = np.random.default_rng(3)
    for _, p, _ in net.params_and_grads():
        p[...] = rng.standard_normal(p.shape) * 0.3
    return net


CASES = [("zf-32", 0.25, "relu5", 8, 4), ("zf-64", 0.125, "relu5", 16, 8),
         ("zf-64", 0.125, "relu2", 5, 3), ("alexnet-64", 0.125, "relu5", 12, 6),
         ("zf", 0.0625, "relu5", 56, 28), ("odd", None, "relu2", 6, 5)]


@pytest.mark.parametrize("arch,width,layer,size,stride", CASES)
def test_incremental_occlusion_equals_the_full_forward(arch, width, layer, size, stride):
    net = odd_geometry_net() if arch == "odd" else build(arch, 7, width=width, init="he", seed=1)
    net.eval()
    image = np.random.default_rng(2).standard_normal(net.input_shape).astype(np.float32)
    boxes, _, _ = square_boxes(image.shape[1], image.shape[2], size, stride)
    probs, act = IncrementalOcclusion(net, image, layer)(boxes, fill=0.0)
    full_probs, full_acts = probs_and_features(net, [layer], 64)(occlude(image, boxes, 0.0))
    np.testing.assert_allclose(probs, full_probs, rtol=1e-5, atol=1e-7)
    ref = full_acts[layer]
    np.testing.assert_allclose(act, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_the_sweep_gives_the_same_maps_incrementally():
    net = build("zf-64", 10, width=0.125, init="he", seed=4).eval()
    image = np.random.default_rng(5).standard_normal(net.input_shape).astype(np.float32)
    forward = probs_and_map(net, "relu5", 32)
    plain = occlusion_sweep(forward, image, 3, 16, 8, batch_size=20)
    inc = occlusion_sweep(forward, image, 3, 16, 8, batch_size=20,
                          occluded=IncrementalOcclusion(net, image, "relu5"))
    np.testing.assert_allclose(inc.prob_true, plain.prob_true, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(inc.act, plain.act, rtol=1e-5)
    np.testing.assert_array_equal(inc.top_class, plain.top_class)


def test_no_projection_from_the_patched_layers():
    net = build("zf-32", 10, width=0.125, seed=0).eval()
    image = np.zeros(net.input_shape, np.float32)
    IncrementalOcclusion(net, image, "relu5")([(0, 0, 4, 4)])
    with pytest.raises(ValueError, match="forward"):
        net.project("relu5", np.zeros((1,) + net.output_shape("relu5"), np.float32))


def test_the_multiply_adds_counted_are_the_windows_ones():
    """last_macs: a box over the whole image costs a full forward per copy; a small box costs
    less, exactly the conv products on its windows plus the layers run in full."""
    net = build("zf-32", 10, width=0.125, init="he", seed=0).eval()
    image = np.random.default_rng(6).standard_normal(net.input_shape).astype(np.float32)
    occ = IncrementalOcclusion(net, image, "relu5")
    full = sum(ly.macs(shape) for ly, shape in zip(net.layers, net.shapes))
    assert occ.full_macs_per_image == full
    occ([(0, 0, 32, 32), (0, 0, 32, 32)])
    assert occ.last_macs == 2 * full
    occ([(0, 0, 4, 4)])
    conv1 = net.layers[0]      # 3x3 / 1, pad 1: a 4x4 box in the corner changes 5x5 outputs
    assert (conv1.k, conv1.stride, conv1.pad) == (3, 1, 1)
    fc = sum(ly.macs(shape) for ly, shape in zip(net.layers, net.shapes) if ly.kind == "fc")
    conv1_window = 5 * 5 * conv1.out_ch * conv1.in_ch * 9
    assert fc + conv1_window < occ.last_macs < full


def float64_case(arch, width):
    net = odd_geometry_net() if arch == "odd" else build(arch, 7, width=width, init="he", seed=1)
    net.astype(np.float64).eval()
    return net, np.random.default_rng(2).standard_normal(net.input_shape).astype(np.float32)


@pytest.mark.parametrize("arch,width,layer,size,stride", CASES)
def test_in_float64_incremental_occlusion_equals_the_full_forward_to_1e_12(arch, width, layer,
                                                                           size, stride):
    """A float64 net: no step of the incremental path (nor of the full forward it is checked
    against) may round in float32; zf-32's conv1 takes the Winograd path, whose input transform
    runs in the input's dtype."""
    net, image = float64_case(arch, width)
    boxes, _, _ = square_boxes(image.shape[1], image.shape[2], size, stride)
    probs, act = IncrementalOcclusion(net, image, layer)(boxes, fill=0.0)
    full_probs, full_acts = probs_and_features(net, [layer], 64)(occlude(image, boxes, 0.0))
    assert probs.dtype == act.dtype == np.float64
    np.testing.assert_allclose(probs, full_probs, rtol=1e-12, atol=0)
    ref = full_acts[layer]
    np.testing.assert_allclose(act, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_in_float64_the_sweeps_agree_to_1e_12():
    """The issue's case: a float64 zf-32 at width 0.25, plain against incremental sweep."""
    net, image = float64_case("zf-32", 0.25)
    forward = probs_and_map(net, "relu5", 64)
    plain = occlusion_sweep(forward, image, 3, 8, 4)
    inc = occlusion_sweep(forward, image, 3, 8, 4,
                          occluded=IncrementalOcclusion(net, image, "relu5"))
    np.testing.assert_allclose(inc.prob_true, plain.prob_true, rtol=1e-12, atol=0)
    np.testing.assert_allclose(inc.act, plain.act, rtol=1e-12)
    np.testing.assert_array_equal(inc.top_class, plain.top_class)
