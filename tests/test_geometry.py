"""The layer geometry that imported (ONNX) nets need: channel groups, asymmetric padding
(top, left, bottom, right) and ceil_mode pooling, each against a definition written out by
hand; on the layers, float64 central differences and every impl present against the reference;
and receptive fields that stay exact for such layers. (Kernels against the reference for these
geometries: tests/test_kernels.py and tests/test_kernels_cuda.py.)"""
import numpy as np
import pytest

from zfraw import backend, ops
from zfraw.layers import Conv2d, MaxPool2d
from zfraw.nets import Net, build_layers
from zfraw.ops import conv as conv_ref, pool as pool_ref, registry
from zfraw.ops.conv import check_window, conv_out_size, pads4

from definitions import check_layer_grads, conv64, naive_maxpool
from gradcheck import assert_close, numeric_grad, tie_free

IMPLS = registry.available_impls("cpu")


# --- sizes -----------------------------------------------------------------------------------

def test_pads4_and_bad_pads():
    assert pads4(2) == (2, 2, 2, 2)
    assert pads4([1, 0, 2, 3]) == (1, 0, 2, 3)
    assert pads4(np.int64(1)) == (1, 1, 1, 1)
    for bad in ((1, 2), (1, 2, 3), 1.5, "1"):
        with pytest.raises(ValueError, match="pad"):
            pads4(bad)
    with pytest.raises(ValueError, match="bad geometry"):
        check_window((1, 1, 5, 5), 3, 3, 1, (0, 0, -1, 0))


@pytest.mark.parametrize("size,k,s,begin,end,floor,ceil", [
    (55, 3, 2, 0, 0, 27, 27),   # bvlc_alexnet pool1: exact either way
    (56, 3, 2, 0, 0, 27, 28),   # one row left over: ceil keeps a partial window
    (6, 3, 2, 0, 0, 2, 3),      # GoogLeNet-style 3/2 ceil pooling on an even map
    (5, 2, 2, 0, 0, 2, 3),
    (2, 2, 2, 0, 1, 1, 1),      # ceil's extra window would start in the trailing padding: dropped
    (4, 3, 2, 1, 1, 2, 3),      # ceil's extra window starts in the input (row 3 of 0..3)
    (7, 3, 3, 1, 0, 2, 3),
    (9, 3, 2, 0, 1, 4, 5),      # asymmetric: (9 + 0 + 1 - 3) / 2 = 3.5
])
def test_output_sizes_floor_and_ceil(size, k, s, begin, end, floor, ceil):
    def by_definition(ceil_mode):
        """Count windows starting at o*s in padded coordinates. floor: while one fits in the
        padded length L. ceil: while the previous one has not reached L yet, and the new one
        starts inside the input or the leading padding (before size + begin)."""
        L, o = size + begin + end, 1
        while (((o - 1) * s + k < L and o * s < size + begin) if ceil_mode
               else o * s + k <= L):
            o += 1
        return o
    assert conv_out_size(size, k, s, begin, end) == floor == by_definition(False)
    assert conv_out_size(size, k, s, begin, end, ceil_mode=True) == ceil == by_definition(True)


def test_check_window_uses_each_side():
    # H: 7 + 1 (top) + 2 (bottom) = 10, k 3 -> 8; W: 5 + 0 + 3 = 8 -> 6.
    assert check_window((1, 1, 7, 5), 3, 3, 1, (1, 0, 2, 3)) == (8, 6)
    assert check_window((1, 1, 6, 6), 3, 3, 2, 0, ceil_mode=True) == (3, 3)
    with pytest.raises(ValueError, match="smaller than"):
        check_window((1, 1, 2, 2), 3, 3, 1, (0, 0, 0, 1))


# --- im2col / col2im with asymmetric pads: the definition --------------------------------------

def naive_im2col(x, kh, kw, s, pads):
    t, l, b, r = pads
    N, C, H, W = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    OH, OW = (H + t + b - kh) // s + 1, (W + l + r - kw) // s + 1
    cols = np.zeros((C * kh * kw, N * OH * OW), x.dtype)
    for n, c, i, j, oh, ow in np.ndindex(N, C, kh, kw, OH, OW):
        cols[(c * kh + i) * kw + j, (n * OH + oh) * OW + ow] = xpad[n, c, oh * s + i, ow * s + j]
    return cols


ASYM = [(3, 3, 1, (1, 0, 2, 1)), (3, 2, 2, (0, 1, 1, 0)), (5, 5, 2, (2, 1, 0, 3)),
        (2, 2, 3, (1, 1, 0, 0)), (1, 1, 2, (0, 2, 1, 0))]


@pytest.mark.parametrize("kh,kw,s,pads", ASYM)
def test_im2col_asymmetric_matches_definition_and_col2im_is_its_adjoint(kh, kw, s, pads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = conv_ref.im2col(x, kh, kw, s, pads)
    assert_close(cols, naive_im2col(x, kh, kw, s, pads), what="im2col")
    c = rng.standard_normal(cols.shape)
    lhs, rhs = np.vdot(cols, c), np.vdot(x, conv_ref.col2im(c, x.shape, kh, kw, s, pads))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


def test_symmetric_tuple_pad_is_the_int_pad():
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
    np.testing.assert_array_equal(conv_ref.im2col(x, 3, 3, 2, (1, 1, 1, 1)),
                                  conv_ref.im2col(x, 3, 3, 2, 1))


# --- max pooling with asymmetric pads and ceil_mode: the definition ---------------------------

def naive_unpool(r, sw, x_shape, k, s, pads):
    """Each r[n, c, oh, ow] added at the input pixel of its switch."""
    t, l = pads[:2]
    up = np.zeros(x_shape, r.dtype)
    for n, c, oh, ow in np.ndindex(*r.shape):
        i, j = divmod(int(sw[n, c, oh, ow]), k)
        up[n, c, oh * s - t + i, ow * s - l + j] += r[n, c, oh, ow]
    return up


# (H, W, k, stride, pad, ceil_mode)
POOL_GEOMS = [
    (7, 7, 3, 2, 0, True),               # 7 -> 3 either way
    (8, 6, 3, 2, 0, True),               # ceil adds a partial last window (8 -> 4, 6 -> 3)
    (6, 7, 3, 2, (0, 1, 1, 0), False),   # asymmetric (TF 'SAME'-like: extra pad after)
    (6, 7, 3, 2, (1, 0, 0, 1), True),    # asymmetric and ceil
    (5, 5, 2, 2, (1, 1, 0, 0), True),    # the last ceil window runs past the input
    (4, 5, 3, 3, (2, 0, 1, 2), True),    # stride = window, heavy padding
    (3, 3, 3, 1, (0, 2, 2, 0), False),
]


def pool_input(shape, values, seed=0):
    rng = np.random.default_rng(seed)
    if values == "tie_free":
        return tie_free(shape, seed)
    x = rng.integers(-2, 2, shape).astype(np.float64)   # ties everywhere
    if values == "neg_inf":
        x[..., :2, :2] = -np.inf                         # windows whose real values are all -inf
        x[..., -1:, -2:] = -np.inf                       # the same at the ceil_mode side
    return x


@pytest.mark.parametrize("values", ["tie_free", "ties", "neg_inf"])
@pytest.mark.parametrize("H,W,k,s,pad,ceil", POOL_GEOMS)
def test_maxpool_reference_matches_its_definition(H, W, k, s, pad, ceil, values):
    x = pool_input((2, 2, H, W), values, seed=H * W + k)
    y, sw = pool_ref.maxpool_fwd(x, k, s, pad, ceil)
    y_def, sw_def = naive_maxpool(x, k, s, pads4(pad), ceil)
    np.testing.assert_array_equal(y, y_def)
    np.testing.assert_array_equal(sw, sw_def)
    r = np.random.default_rng(1).standard_normal(y.shape)
    assert_close(ops.unpool(r, sw, x.shape, k, s, pad, ceil),
                 naive_unpool(r, sw, x.shape, k, s, pads4(pad)), atol=1e-12)


def test_ceil_mode_hand_case():
    # 4x4 -> 3x3/2 ceil: windows rows 0-2, 2-4 (row 4 is past the input: never a candidate).
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, sw = pool_ref.maxpool_fwd(x, 3, 2, 0, True)
    assert y[0, 0].tolist() == [[10., 11.], [14., 15.]]
    assert sw[0, 0].tolist() == [[8, 7], [5, 4]]   # (2,2), (2,1), (1,2), (1,1) in their windows
    assert pool_ref.maxpool_fwd(x, 3, 2, 0)[0].shape == (1, 1, 1, 1)


def test_pool_pad_must_be_smaller_than_the_window_on_every_side():
    with pytest.raises(ValueError, match="padding"):
        ops.maxpool_fwd(np.zeros((1, 1, 5, 5)), 3, 2, (0, 0, 3, 0))


# --- layers: gradients, deconv, every impl ----------------------------------------------------

# (in, out, k, stride, pad, groups): groups 1, 2, depthwise (groups = in), a channel multiplier
CONVS = [
    (4, 6, 3, 1, 1, 1),
    (4, 6, 3, 2, (1, 0, 2, 1), 1),
    (4, 6, 3, 1, 1, 2),
    (6, 4, 3, 2, (0, 1, 1, 0), 2),
    (3, 3, 3, 1, 1, 3),              # depthwise
    (3, 6, 2, 2, (1, 1, 0, 0), 3),   # depthwise with two filters per channel
]


@pytest.mark.parametrize("cin,cout,k,s,pad,groups", CONVS)
def test_conv_gradients_grouped_and_asymmetric(cin, cout, k, s, pad, groups, conv_products):
    layer = conv64(cin, cout, k, s, pad, groups, seed=cin + groups)
    check_layer_grads(layer, tie_free((2, cin, 6, 5), seed=k + groups))


@pytest.mark.parametrize("cin,cout,k,s,pad,groups", CONVS)
def test_grouped_conv_is_the_block_diagonal_dense_conv(cin, cout, k, s, pad, groups,
                                                        conv_products):
    """A grouped conv equals the dense conv whose filters are zero outside their group's input
    channels, in forward, backward and deconv (definition of groups)."""
    layer = conv64(cin, cout, k, s, pad, groups, seed=3)
    dense = conv64(cin, cout, k, s, pad, 1)
    fg, cg = cout // groups, cin // groups
    dense.params["W"][...] = 0
    for g in range(groups):
        dense.params["W"][g * fg:(g + 1) * fg, g * cg:(g + 1) * cg] = \
            layer.params["W"][g * fg:(g + 1) * fg]
    dense.params["b"][...] = layer.params["b"]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, cin, 7, 6))
    y = layer.forward(x)
    assert_close(y, dense.forward(x), atol=1e-12, what="forward")
    dy = rng.standard_normal(y.shape)
    assert_close(layer.backward(dy), dense.backward(dy), atol=1e-12, what="dx")
    for g in range(groups):
        assert_close(layer.grads["W"][g * fg:(g + 1) * fg],
                     dense.grads["W"][g * fg:(g + 1) * fg, g * cg:(g + 1) * cg], atol=1e-12)
    assert_close(layer.grads["b"], dense.grads["b"], atol=1e-12)
    assert_close(layer.deconv(dy), dense.deconv(dy), atol=1e-12, what="deconv")


@pytest.mark.parametrize("cin,cout,k,s,pad,groups", CONVS)
def test_grouped_deconv_is_the_gradient_of_the_inner_product(cin, cout, k, s, pad, groups,
                                                             conv_products):
    layer = conv64(cin, cout, k, s, pad, groups, seed=5)
    layer.params["b"][...] = 7.0   # the deconv uses no bias
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, cin, 6, 7))
    r = rng.standard_normal(layer.forward(x).shape)
    down = layer.deconv(r)
    assert_close(down, numeric_grad(lambda: float(np.vdot(layer.forward(x), r)), x), atol=1e-6)


def test_conv_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="divisible by groups 2"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="divisible by groups 2"):
        Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="groups"):
        Conv2d(4, 4, 3, groups=0)
    layer = Conv2d(6, 4, 3, groups=2)
    assert layer.params["W"].shape == (4, 3, 3, 3)
    assert layer.macs((6, 5, 5)) == 4 * 3 * 9 * 3 * 3   # a group sees only its channels


@pytest.mark.parametrize("H,W,k,s,pad,ceil", POOL_GEOMS)
def test_maxpool_layer_gradients(H, W, k, s, pad, ceil):
    layer = MaxPool2d(k, s, pad, ceil_mode=ceil)
    check_layer_grads(layer, tie_free((2, 2, H, W), seed=H + W + k), atol=1e-5)


def _run_layer(layer, impl, x, r):
    """forward, backward and deconv of ``layer`` under ``impl``; results on the host."""
    device = registry.impl_device(impl) or "cpu"
    with ops.use_impl(impl):
        y = backend.to_host(layer.forward(backend.to_device(x, device)))
        dx = backend.to_host(layer.backward(backend.to_device(r, device)))
        grads = {key: backend.to_host(g).copy() for key, g in layer.grads.items()}
        down = backend.to_host(layer.deconv(backend.to_device(r, device)))
    return y, dx, grads, down


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "numpy"] or
                         [pytest.param(None, marks=pytest.mark.skip(reason="no kernel impl"))])
@pytest.mark.parametrize("cin,cout,k,s,pad,groups", CONVS)
def test_conv_layer_on_every_impl_matches_the_reference(impl, cin, cout, k, s, pad, groups,
                                                        conv_products):
    layer = conv64(cin, cout, k, s, pad, groups, seed=8)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, cin, 7, 6))
    r = rng.standard_normal((2,) + layer.output_shape(x.shape[1:]))
    ref = _run_layer(layer, "numpy", x, r)
    got = _run_layer(layer, impl, x, r)
    for a, b, what in zip(got, ref, ("y", "dx", "grads", "deconv")):
        if what == "grads":
            for key in a:
                assert_close(a[key], b[key], atol=1e-12, rtol=1e-10, what=key)
        else:
            assert_close(a, b, atol=1e-12, rtol=1e-10, what=what)


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "numpy"] or
                         [pytest.param(None, marks=pytest.mark.skip(reason="no kernel impl"))])
@pytest.mark.parametrize("values", ["tie_free", "neg_inf"])
@pytest.mark.parametrize("H,W,k,s,pad,ceil", POOL_GEOMS)
def test_maxpool_layer_on_every_impl_matches_the_reference(impl, H, W, k, s, pad, ceil, values):
    layer = MaxPool2d(k, s, pad, ceil_mode=ceil)
    x = pool_input((2, 3, H, W), values, seed=k)
    r = np.random.default_rng(2).standard_normal((2,) + layer.output_shape(x.shape[1:]))
    y_ref, dx_ref, _, down_ref = _run_layer(layer, "numpy", x, r)
    sw_ref = layer.switches
    y, dx, _, down = _run_layer(layer, impl, x, r)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(backend.to_host(layer.switches), sw_ref)
    assert_close(dx, dx_ref, atol=1e-12)
    assert_close(down, down_ref, atol=1e-12)


def test_layers_keep_the_plain_pad_and_all_four_sides():
    assert Conv2d(1, 1, 3, pad=(1, 1, 1, 1)).pad == 1
    layer = Conv2d(1, 1, 3, pad=[0, 1, 2, 1])
    assert layer.pad == (0, 1, 2, 1) and layer.pads == (0, 1, 2, 1)
    assert layer.window((1, 9, 9)) == (3, 1, 0, 1)
    pool = MaxPool2d(3, 2, (1, 0, 0, 1), ceil_mode=True)
    assert pool.window((1, 9, 9)) == (3, 2, 1, 0) and pool.ceil_mode


# --- build specs and receptive fields -----------------------------------------------------------

SPECS = [("c1", "conv", dict(out=4, k=3, stride=2, pad=[1, 0, 0, 2])), ("r1", "relu", {}),
         ("p1", "pool", dict(k=3, stride=2, pad=[0, 1, 1, 0], ceil_mode=True)),
         ("c2", "conv", dict(out=4, k=3, stride=1, pad=[0, 2, 1, 0], groups=2)),
         ("r2", "relu", {}),
         ("p2", "pool", dict(k=2, stride=2, ceil_mode=True))]


def test_build_layers_reads_groups_asymmetric_pads_and_ceil_mode():
    layers = build_layers(SPECS, (2, 17, 15), 3, dtype=np.float64)
    c1, _, p1, c2, _, p2 = layers
    assert c1.pads == (1, 0, 0, 2) and c2.groups == 2 and c2.pads == (0, 2, 1, 0)
    assert p1.pads == (0, 1, 1, 0) and p1.ceil_mode and p2.ceil_mode and p2.pad == 0
    net = Net(layers, (2, 17, 15), 3)
    # c1: (17+1-3)//2+1 = 8, (15+2-3)//2+1 = 8; p1 ceil: 8+1-3 = 6 -> 4, 8+1-3 = 6 -> 4;
    # c2: 4+1-3+1 = 3, 4+2-3+1 = 4; p2 ceil: 3 -> 2 (a half window), 4 -> 2.
    assert net.shapes[1:] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (4, 3, 4), (4, 3, 4), (4, 2, 2)]
    rows = {r["name"]: r for r in net.summary()}
    # Starts: c1 (-1, 0); p1 (-1 - 0*2, 0 - 1*2) = (-1, -2); c2 (-1, -2 - 2*4) = (-1, -10).
    assert (rows["c1"]["rf_start"], rows["c1"]["rf_start_x"]) == (-1, 0)
    assert (rows["p1"]["rf_start"], rows["p1"]["rf_start_x"]) == (-1, -2)
    assert (rows["c2"]["rf_start"], rows["c2"]["rf_start_x"]) == (-1, -10)
    assert "-1,-10" in net.summary_text()


@pytest.mark.parametrize("layer", ["c1", "p1", "c2", "p2"])
def test_rf_box_holds_exactly_the_pixels_that_change_an_output(layer):
    """Perturbing an input pixel changes an output only if the pixel lies in its rf_box; for
    the top-left output and an interior one, every pixel of the box inside the image does
    (float64, a random positive input, positive weights: the ReLUs pass everything, and a large
    bump wins every max window it reaches). The last output only gets the first half: with
    bottom/right pads smaller than the top/left ones, or ceil_mode, its box may hold pixels no
    window reads at all."""
    H, W = 31, 29
    net = Net(build_layers(SPECS, (2, H, W), 3, dtype=np.float64), (2, H, W), 3)
    rng = np.random.default_rng(0)
    for _, p, _ in net.params_and_grads():
        p[...] = rng.uniform(0.5, 1.5, p.shape)
    x = rng.uniform(0, 1, (1, 2, H, W))
    base = net.forward(x, until=layer)
    _, OH, OW = net.shapes[net.index(layer) + 1]
    positions = [(0, 0), ((OH - 1) // 2, (OW - 1) // 2), (OH - 1, OW - 1)]
    assert OH >= 3 and OW >= 3   # the interior position is neither the first nor the last
    changed = np.zeros((len(positions), H, W), bool)
    for i in range(H):
        for j in range(W):
            x2 = x.copy()
            x2[0, :, i, j] += 100.0
            out = net.forward(x2, until=layer)
            for n, (oy, ox) in enumerate(positions):
                changed[n, i, j] = not np.array_equal(out[0, :, oy, ox], base[0, :, oy, ox])
    for n, (oy, ox) in enumerate(positions):
        y0, x0, y1, x1 = net.rf_box(layer, oy, ox)
        inside = np.zeros((H, W), bool)
        inside[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        assert not (changed[n] & ~inside).any(), f"{layer} ({oy}, {ox}): influence outside"
        if n < 2:
            np.testing.assert_array_equal(changed[n], inside, err_msg=f"{layer} ({oy}, {ox})")
