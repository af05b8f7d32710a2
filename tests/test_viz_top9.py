"""Top-9 through a net: the streaming pass matches brute force, and receptive-field crops put
an image's single bright pixel where the projection puts it."""
import numpy as np

from zfraw.nets import Net, build_layers
from zfraw.optim.init import initialize
from zfraw.viz.evolution import evolution_figure, feature_evolution
from zfraw.viz.source import ImageSource
from zfraw.viz.top9 import collect_topk, layer_figure, map_blocks, project_topk

SPECS = [("conv1", "conv", dict(out=3, k=3, stride=1, pad=1)), ("relu1", "relu", {}),
         ("pool1", "pool", dict(k=3, stride=2, pad=1)),
         ("conv2", "conv", dict(out=4, k=3, stride=2, pad=1)), ("relu2", "relu", {}),
         ("flatten", "flatten", {}), ("fc3", "fc", dict(out="classes"))]


def make_net(seed=0):
    net = Net(build_layers(SPECS, (3, 16, 16), 5), (3, 16, 16), 5)
    initialize(net, "he", seed)
    return net


def test_collect_topk_matches_brute_force():
    rng = np.random.default_rng(0)
    src = ImageSource(rng.integers(0, 256, (23, 18, 18, 3), dtype=np.uint8),
                      rng.random((18, 18, 3)).astype(np.float32) * 100, 16,
                      rng.integers(0, 5, 23))
    net = make_net()
    got = collect_topk(net, src, ["relu2", "pool1", "fc3"], k=4, batch_size=5, desc="")
    _, acts = net.eval().forward(src.inputs(np.arange(23)), capture=["relu2", "pool1", "fc3"])
    for name, act in acts.items():
        a = act.reshape(23, act.shape[1], -1)
        hw = a.shape[2]
        w = act.shape[3] if act.ndim == 4 else 1
        for m in range(a.shape[1]):
            flat = a[:, m].ravel()
            order = np.argsort(-flat, kind="stable")[:4]
            np.testing.assert_allclose(got[name].values[m], flat[order], rtol=1e-6)
            np.testing.assert_array_equal(got[name].image[m], order // hw)
            np.testing.assert_array_equal(got[name].y[m] * w + got[name].x[m], order % hw)


def test_crop_recovers_bright_pixel():
    # conv1 map 0 copies the green channel (centre tap 1), map 1 and 2 are silent, so the
    # strongest pool1 activation of map 0 sits over the bright pixel.
    net = make_net()
    w = net.layer("conv1").params["W"]
    w[...] = 0
    w[0, 1, 1, 1] = 1.0
    images = np.zeros((3, 16, 16, 3), np.uint8)
    spots = [(0, 0), (9, 4), (15, 12)]   # corners exercise out-of-image padding
    for n, (y, x) in enumerate(spots):
        images[n, y, x, 1] = 200 + 20 * n  # later images brighter: known order of the top-3
    src = ImageSource(images, None, 16, np.zeros(3, int))
    best = collect_topk(net, src, ["pool1"], k=9, batch_size=2, desc="")["pool1"]
    items = project_topk(net, src, "pool1", best, [0])[0]
    # Overlapping pooling windows see the same pixel, so an image can fill several slots.
    items = [it for it in items if it.value > 0]  # the rest of the 9 are zero activations
    assert items[0].image == 2 and {it.image for it in items} == {0, 1, 2}
    size = net.receptive_field("pool1")[0]
    for value, n, (y0, x0, _, _), proj, patch in items:
        y, x = spots[n]
        assert proj.shape == patch.shape == (3, size, size)
        py, px = np.unravel_index(np.argmax(patch[1]), patch.shape[1:])
        qy, qx = np.unravel_index(np.argmax(proj[1]), proj.shape[1:])
        assert (py, px) == (qy, qx)                       # projection and patch line up
        assert patch[1, py, px] == images[n, y, x, 1]     # it is the bright pixel itself
        assert np.isclose(value, images[n, y, x, 1])
        assert (y0 + py, x0 + px) == (y, x)              # recovered through the crop box
        assert np.count_nonzero(proj) == 1                # the filter is a single tap
    fig = layer_figure([map_blocks(items)])
    assert fig.dtype == np.uint8 and fig.ndim == 3


def test_feature_evolution_strip():
    rng = np.random.default_rng(1)
    src = ImageSource(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), None, 16,
                      np.zeros(6, int))
    snaps = [(e, make_net(seed=e)) for e in (1, 2, 3)]
    evo = feature_evolution(snaps, src, "relu2", [0, 2], batch_size=4)
    assert [e for e, _ in evo] == [1, 2, 3]
    for e, tiles in evo:
        net = dict(snaps)[e]
        best = collect_topk(net, src, ["relu2"], k=1, desc="")["relu2"]
        for m in (0, 2):
            ref = project_topk(net, src, "relu2", best, [m])[m][0].proj
            np.testing.assert_allclose(tiles[m], ref)
    img = evolution_figure(evo, [0, 2])
    assert img.shape[1] > img.shape[0]  # 3 epochs wide, 2 maps tall
