// im2col and col2im (layout of zfraw/ops/conv.py):
//   cols[n, (c*kh + i)*kw + j, oh*OW + ow] = xpad[n, c, oh*stride + i, ow*stride + j]
// Differences from the NumPy reference:
// - im2col: one thread per element of cols, reading x directly; the zero padding is never
//   materialized (an out-of-image tap reads as 0).
// - col2im: a gather, one thread per input pixel summing every cols entry that reads it, in
//   place of the reference's kh*kw strided scatter-adds. No atomics; the sum order is fixed
//   (oh, then ow, ascending), so the result is deterministic, though rounded differently
//   from the reference.
#include "common.cuh"

// x: (N, C, H, W), cols: (N, C*kh*kw, OH*OW), both contiguous.
template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long N, long long C,
                       long long H, long long W, long long kh, long long kw, long long stride,
                       long long pad, long long OH, long long OW) {
  // cols' flat index is ((((n*C + c)*kh + i)*kw + j)*OH + oh)*OW + ow, with ow fastest so
  // neighbouring threads write neighbouring addresses.
  ZF_FOR_EACH(idx, N * C * kh * kw * OH * OW) {
    long long r = idx;
    const long long ow = r % OW; r /= OW;
    const long long oh = r % OH; r /= OH;
    const long long j = r % kw; r /= kw;
    const long long i = r % kh; r /= kh;
    const long long nc = r;  // n*C + c
    const long long h = oh * stride + i - pad;  // row in the unpadded input
    const long long w = ow * stride + j - pad;
    const bool inside = h >= 0 && h < H && w >= 0 && w < W;
    cols[idx] = inside ? x[(nc * H + h) * W + w] : T(0);
  }
}

// cols: (N, C*kh*kw, OH*OW) -> x: (N, C, H, W), both contiguous; overlaps summed.
template <typename T>
__device__ void col2im(const T* __restrict__ cols, T* __restrict__ x, long long N, long long C,
                       long long H, long long W, long long kh, long long kw, long long stride,
                       long long pad, long long OH, long long OW) {
  ZF_FOR_EACH(idx, N * C * H * W) {
    const long long w = idx % W;
    const long long h = (idx / W) % H;
    const long long nc = idx / (H * W);
    // Output positions whose window holds padded pixel (h + pad, w + pad); the tap within
    // that window is i = h + pad - oh*stride, j = w + pad - ow*stride.
    const ZfRange oh_range = zf_covering(h + pad, kh, stride, OH);
    const ZfRange ow_range = zf_covering(w + pad, kw, stride, OW);
    T acc = T(0);
    for (long long oh = oh_range.lo; oh <= oh_range.hi; ++oh) {
      const long long i = h + pad - oh * stride;
      for (long long ow = ow_range.lo; ow <= ow_range.hi; ++ow) {
        const long long j = w + pad - ow * stride;
        acc += cols[((nc * kh + i) * kw + j) * OH * OW + oh * OW + ow];
      }
    }
    x[idx] = acc;
  }
}

#define ZF_CONV_KERNELS(T, SUF)                                                              \
  extern "C" __global__ void im2col_##SUF(const T* x, T* cols, long long N, long long C,      \
                                          long long H, long long W, long long kh,            \
                                          long long kw, long long stride, long long pad,     \
                                          long long OH, long long OW) {                      \
    im2col<T>(x, cols, N, C, H, W, kh, kw, stride, pad, OH, OW);                             \
  }                                                                                          \
  extern "C" __global__ void col2im_##SUF(const T* cols, T* x, long long N, long long C,      \
                                          long long H, long long W, long long kh,            \
                                          long long kw, long long stride, long long pad,     \
                                          long long OH, long long OW) {                      \
    col2im<T>(cols, x, N, C, H, W, kh, kw, stride, pad, OH, OW);                             \
  }

ZF_CONV_KERNELS(float, f32)
ZF_CONV_KERNELS(double, f64)
