"""The NumPy reference primitives against definitions written out by hand."""
import numpy as np
import pytest

from zfraw import ops
from zfraw.ops import conv as conv_ref, lrn as lrn_ref, pool as pool_ref

from definitions import naive_maxpool
from gradcheck import assert_close, numeric_grad, tie_free


def naive_im2col(x, kh, kw, s, p):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    OH, OW = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    cols = np.zeros((C * kh * kw, N * OH * OW), x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(OH):
                        for ow in range(OW):
                            cols[(c * kh + i) * kw + j, (n * OH + oh) * OW + ow] = \
                                xp[n, c, oh * s + i, ow * s + j]
    return cols


GEOMETRIES = [(1, 1, 1, 0), (3, 3, 1, 1), (3, 2, 2, 0), (5, 3, 2, 2), (2, 2, 3, 0), (7, 7, 2, 1)]


@pytest.mark.parametrize("kh,kw,s,p", GEOMETRIES)
def test_im2col_matches_definition(kh, kw, s, p):
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    assert_close(conv_ref.im2col(x, kh, kw, s, p), naive_im2col(x, kh, kw, s, p), what="im2col")


@pytest.mark.parametrize("kh,kw,s,p", GEOMETRIES)
def test_col2im_is_adjoint_of_im2col(kh, kw, s, p):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8))
    cols = rng.standard_normal(naive_im2col(x, kh, kw, s, p).shape)
    lhs = np.vdot(conv_ref.im2col(x, kh, kw, s, p), cols)
    rhs = np.vdot(x, conv_ref.col2im(cols, x.shape, kh, kw, s, p))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


def test_im2col_non_contiguous_input():
    x = np.random.default_rng(2).standard_normal((3, 4, 10, 10)).transpose(0, 1, 3, 2)
    assert_close(conv_ref.im2col(x, 3, 3, 2, 1), naive_im2col(np.ascontiguousarray(x), 3, 3, 2, 1))


def test_maxpool_overlapping_padded_hand_case():
    # 4x4 input, 3x3 windows, stride 2, pad 1 -> 2x2 output; windows overlap on row/col 1.
    x = np.array([[1., 5., 2., 0.],
                  [3., 4., 9., 1.],
                  [7., 0., 6., 8.],
                  [2., 2., 3., 4.]]).reshape(1, 1, 4, 4)
    y, sw = pool_ref.maxpool_fwd(x, 3, 2, 1)
    # Switch = (row - window top)*3 + (col - window left), window top/left = 2*out - 1.
    # (0,0): rows -1..1, cols -1..1: max 5 at x[0,1] -> (1, 2) -> 5
    # (0,1): rows -1..1, cols  1..3: max 9 at x[1,2] -> (2, 1) -> 7
    # (1,0): rows  1..3, cols -1..1: max 7 at x[2,0] -> (1, 1) -> 4
    # (1,1): rows  1..3, cols  1..3: max 9 at x[1,2] -> (0, 1) -> 1
    assert_close(y[0, 0], np.array([[5., 9.], [7., 9.]]))
    assert sw[0, 0].tolist() == [[5, 7], [4, 1]]
    # Backward / unpooling: the 9 is chosen by two overlapping windows, so its gradient sums.
    dx = pool_ref.maxpool_bwd(np.array([[[[1., 2.], [3., 4.]]]]), sw, x.shape, 3, 2, 1)
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 0] = 1., 2. + 4., 3.
    assert_close(dx[0, 0], expected)


def test_maxpool_ties_go_to_first_maximum_and_padding_never_wins():
    x = np.full((1, 1, 3, 3), -5.0)  # all equal and negative: padding (-inf) must still lose
    y, sw = pool_ref.maxpool_fwd(x, 3, 2, 1)
    # every window's first in-image position in row-major order
    assert sw[0, 0].tolist() == [[4, 3], [1, 0]]
    assert (y == -5.0).all()


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 1, 2), (2, 2, 1), (3, 3, 0)])
def test_maxpool_matches_its_rule_even_when_every_real_value_is_minus_infinity(k, s, p):
    rng = np.random.default_rng(k + s + p)
    x = rng.integers(-2, 3, (2, 2, 5, 6)).astype(np.float64)
    x[..., :2, :2] = -np.inf   # border windows whose real values are all -inf
    x[1, 1] = -np.inf          # a whole plane of -inf
    y, sw = pool_ref.maxpool_fwd(x, k, s, p)
    y_def, sw_def = naive_maxpool(x, k, s, p)
    np.testing.assert_array_equal(y, y_def)
    np.testing.assert_array_equal(sw, sw_def)


def test_unpool_puts_each_value_exactly_at_its_switch():
    rng = np.random.default_rng(3)
    x = tie_free((2, 3, 7, 7), seed=3)
    y, sw = pool_ref.maxpool_fwd(x, 2, 2, 0)  # non-overlapping: each value lands alone
    r = rng.standard_normal(y.shape)
    up = ops.unpool(r, sw, x.shape, 2, 2, 0)
    assert np.count_nonzero(up) == r.size
    for n, c, i, j in np.ndindex(*y.shape):
        di, dj = divmod(int(sw[n, c, i, j]), 2)
        assert up[n, c, 2 * i + di, 2 * j + dj] == r[n, c, i, j]
        assert x[n, c, 2 * i + di, 2 * j + dj] == y[n, c, i, j]  # the switch is the argmax


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 2, 0), (2, 2, 0), (3, 1, 1), (2, 3, 0)])
def test_maxpool_backward_matches_finite_differences(k, s, p):
    x = tie_free((2, 2, 7, 6), seed=k + s + p)
    dy = np.random.default_rng(0).standard_normal(pool_ref.maxpool_fwd(x, k, s, p)[0].shape)
    _, sw = pool_ref.maxpool_fwd(x, k, s, p)
    num = numeric_grad(lambda: np.vdot(pool_ref.maxpool_fwd(x, k, s, p)[0], dy), x, eps=1e-7)
    assert_close(pool_ref.maxpool_bwd(dy, sw, x.shape, k, s, p), num, atol=1e-6)


def test_lrn_hand_case():
    # 1 pixel, 3 channels, size 3: channel c sums squares over c-1..c+1.
    x = np.array([1., 2., 3.]).reshape(1, 3, 1, 1)
    alpha, beta, bias, size = 0.3, 0.75, 2.0, 3
    y, scale = lrn_ref.lrn_fwd(x, size, alpha, beta, bias)
    sums = np.array([1 + 4, 1 + 4 + 9, 4 + 9])
    expected_scale = bias + alpha / size * sums
    assert_close(scale.ravel(), expected_scale, rtol=1e-12)
    assert_close(y.ravel(), np.array([1., 2., 3.]) / expected_scale ** beta, rtol=1e-12)


def test_lrn_even_size_window_is_onnx():
    # size 4: window [c-1, c+2] (floor((4-1)/2)=1 before, ceil(3/2)=2 after)
    x = np.arange(1., 6.).reshape(1, 5, 1, 1)
    _, scale = lrn_ref.lrn_fwd(x, 4, 4.0, 1.0, 0.0)  # alpha/size = 1: scale = plain sum
    sq = x.ravel() ** 2
    expected = [sq[max(0, c - 1):c + 3].sum() for c in range(5)]
    assert_close(scale.ravel(), np.array(expected), rtol=1e-12)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_lrn_backward_matches_finite_differences(size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 6, 3, 2))
    alpha, beta, bias = 0.5, 0.75, 1.5  # large alpha so the cross-channel term matters
    dy = rng.standard_normal(x.shape)
    y, scale = lrn_ref.lrn_fwd(x, size, alpha, beta, bias)
    num = numeric_grad(lambda: np.vdot(lrn_ref.lrn_fwd(x, size, alpha, beta, bias)[0], dy), x)
    assert_close(lrn_ref.lrn_bwd(dy, x, y, scale, size, alpha, beta), num, atol=1e-7)


def test_softmax_xent_stable_and_correct():
    logits = np.array([[1000., 0., -1000.], [1., 2., 3.]])
    labels = np.array([0, 2])
    loss, probs = ops.softmax_xent(logits, labels)
    p2 = np.exp([1., 2., 3.]) / np.exp([1., 2., 3.]).sum()
    assert np.isfinite(loss)
    assert_close(float(loss), (0.0 - np.log(p2[2])) / 2, rtol=1e-12)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 5))
    y = rng.integers(0, 5, 4)
    _, pr = ops.softmax_xent(z, y)
    num = numeric_grad(lambda: float(ops.softmax_xent(z, y)[0]), z)
    assert_close(ops.softmax_xent_bwd(pr, y), num, atol=1e-8)


def test_softmax_stable_and_the_same_as_softmax_xent_probabilities():
    from zfraw.ops.loss import softmax

    p = softmax(np.array([[1000., 0., -1000.], [1., 2., 3.]]))
    assert np.all(np.isfinite(p)) and p[0, 0] == 1.0 and p[0, 2] == 0.0
    assert_close(p[1], np.exp([1., 2., 3.]) / np.exp([1., 2., 3.]).sum(), rtol=1e-15)
    z = np.random.default_rng(1).standard_normal((6, 7)) * 10
    assert_close(softmax(z), ops.softmax_xent(z, np.zeros(6, np.int64))[1], rtol=1e-12)
    assert softmax(z.astype(np.float32)).dtype == np.float32


def test_sgd_update_formula():
    rng = np.random.default_rng(0)
    p, g, v = (rng.standard_normal(5) for _ in range(3))
    p0, v0 = p.copy(), v.copy()
    ops.sgd_update(p, g, v, 0.1, 0.9, 0.01)
    v_expected = 0.9 * v0 - 0.1 * (g + 0.01 * p0)
    assert_close(v, v_expected, rtol=1e-12)
    assert_close(p, p0 + v_expected, rtol=1e-12)


def test_dropout_mask_is_seeded_scaled_and_has_the_right_rate():
    x = np.ones((200, 100), np.float32)
    y, mask = ops.dropout_fwd(x, 0.3, seed=7)
    y2, _ = ops.dropout_fwd(x, 0.3, seed=7)
    y3, _ = ops.dropout_fwd(x, 0.3, seed=8)
    assert (y == y2).all() and not (y == y3).all()
    assert set(np.unique(mask).tolist()) == {0.0, np.float32(1 / 0.7)}
    assert abs((mask == 0).mean() - 0.3) < 0.01
    with pytest.raises(ValueError, match="dropout"):
        ops.dropout_fwd(x, 1.0, 0)


def test_bad_geometry_is_reported():
    with pytest.raises(ValueError, match="smaller than"):
        ops.im2col(np.zeros((1, 1, 2, 2)), 3, 3, 1, 0)
    with pytest.raises(ValueError, match="4-d"):
        ops.maxpool_fwd(np.zeros((2, 2, 2)), 2, 2, 0)
    with pytest.raises(ValueError, match="padding"):
        ops.maxpool_fwd(np.zeros((1, 1, 4, 4)), 2, 2, 2)


def test_avgpool_divisors_hand_cases():
    """Ones in, so each output is (taps in the input) / divisor. 8x8, 3x3/2, pad 1, ceil mode:
    five windows per axis, the last one starting on the last row (7) and running past the
    bottom padding (row 8) to row 9. Counting the padding, the divisor stops at the padded
    input: the first window counts 3 rows (pad, 0, 1) and holds 2, the last counts 2 (7, pad)
    and holds 1. (onnxruntime and PyTorch give these numbers.)"""
    x = np.ones((1, 1, 8, 8))
    counted = ops.avgpool_fwd(x, 3, 3, 2, 1, True, True)[0, 0]
    edge = np.array([2 / 3, 1, 1, 1, 1 / 2])
    assert_close(counted, edge[:, None] * edge[None, :], atol=1e-15)
    assert_close(ops.avgpool_fwd(x, 3, 3, 2, 1, True, False), np.ones((1, 1, 5, 5)), atol=1e-15)
    # Without ceil mode the divisor counting the padding is always k*k: 4/9 in the corners.
    assert ops.avgpool_fwd(x, 3, 3, 2, 1, False, True)[0, 0, 0, 0] == pytest.approx(4 / 9)
    # Asymmetric: padding only at the bottom and right, counted.
    one_sided = ops.avgpool_fwd(x, 3, 3, 2, (0, 0, 1, 1), False, True)[0, 0]
    edge = np.array([1, 1, 1, 2 / 3])
    assert_close(one_sided, edge[:, None] * edge[None, :], atol=1e-15)


@pytest.mark.parametrize("kh,kw,s,p,ceil,count_pad", [
    (3, 3, 2, 1, False, False), (3, 3, 2, 1, True, True), (2, 3, 1, (1, 0, 0, 2), False, True),
    (5, 7, 1, 0, False, False), (3, 3, 3, (0, 2, 1, 0), True, False)])
def test_avgpool_matches_definition_and_its_backward_the_gradient(kh, kw, s, p, ceil, count_pad):
    from definitions import naive_avgpool

    x = tie_free((2, 2, 5, 7), seed=kh + kw)
    y = ops.avgpool_fwd(x, kh, kw, s, p, ceil, count_pad)
    assert_close(y, naive_avgpool(x, kh, kw, s, p, ceil, count_pad), atol=1e-14)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dx = ops.avgpool_bwd(dy, x.shape, kh, kw, s, p, ceil, count_pad)
    grad = numeric_grad(lambda: float(np.vdot(ops.avgpool_fwd(x, kh, kw, s, p, ceil, count_pad),
                                              dy)), x)
    assert_close(dx, grad, atol=1e-8)


def test_avgpool_bad_geometry_is_reported():
    with pytest.raises(ValueError, match="avgpool: padding .* smaller than the window 3x3"):
        ops.avgpool_fwd(np.zeros((1, 1, 4, 4)), 3, 3, 1, (0, 0, 3, 0))
    with pytest.raises(ValueError, match="avgpool_bwd: dy"):
        ops.avgpool_bwd(np.zeros((1, 1, 2, 2)), (1, 1, 4, 4), 3, 3, 2, 0)
