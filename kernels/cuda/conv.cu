// Siblings  reference zfraw/ops/conv.py
//           Numba     kernels/numba/conv.py
//           CUDA      kernels/cuda/conv.py (launchers), kernels/cuda/conv.cu
//           cases     kernels/kernel_cases.py (WINDOWS)
//           benchmark `python -m benchmarks.op im2col`  (or col2im)
//
// im2col and col2im (layout of zfraw/ops/conv.py, the batch in the column axis):
//   cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = xpad[n, c, oh*stride + i, ow*stride + j]
// Padding enters as the top and left pads (pad_h, pad_w) with the output size (OH, OW): an
// asymmetric (top, left, bottom, right) pad needs nothing more (the bottom/right pads only
// decide OH, OW).
// Differences from the NumPy reference:
// - im2col: one thread per output position copies its window's taps straight from x; the zero
//   padding is never materialized (an out-of-image tap reads as 0).
// - col2im: a gather, one thread per input pixel summing every cols entry that reads it, in
//   place of the reference's kh*kw strided scatter-adds. No atomics; the sum order is fixed
//   (oh, then ow, ascending), so the result is deterministic, though rounded differently
//   from the reference.
#include "common.cuh"

// x: (N, C, H, W), cols: (C*kh*kw, N*OH*OW), both contiguous.
template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long N, long long C,
                       long long H, long long W, long long kh, long long kw, long long stride,
                       long long pad_h, long long pad_w, long long OH, long long OW) {
  // One thread per (n, c, oh, ow) copies its window's kh*kw taps, so the index is decoded once
  // per window rather than once per tap. For a fixed tap, neighbouring threads (neighbouring
  // ow) write neighbouring addresses.
  ZF_FOR_EACH(idx, N * C * OH * OW) {
    const long long ow = idx % OW;
    const long long oh = (idx / OW) % OH;
    const long long nc = idx / (OH * OW);  // n*C + c
    const long long n = nc / C, c = nc % C;
    const long long NP = N * OH * OW;      // the length of one cols row
    const T* plane = x + nc * H * W;
    // cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] sits at ((c*kh + i)*kw + j)*NP + (n*OH + oh)*OW
    // + ow, so tap (i, j) is at out[(i*kw + j) * NP].
    T* out = cols + c * kh * kw * NP + (n * OH + oh) * OW + ow;
    const long long h0 = oh * stride - pad_h;  // window's top-left in unpadded coordinates
    const long long w0 = ow * stride - pad_w;
    for (long long i = 0; i < kh; ++i) {
      const long long h = h0 + i;
      for (long long j = 0; j < kw; ++j) {
        const long long w = w0 + j;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;  // else zero padding
        out[(i * kw + j) * NP] = inside ? plane[h * W + w] : T(0);
      }
    }
  }
}

// cols: (C*kh*kw, N*OH*OW) -> x: (N, C, H, W), both contiguous; overlaps summed.
template <typename T>
__device__ void col2im(const T* __restrict__ cols, T* __restrict__ x, long long N, long long C,
                       long long H, long long W, long long kh, long long kw, long long stride,
                       long long pad_h, long long pad_w, long long OH, long long OW) {
  ZF_FOR_EACH(idx, N * C * H * W) {
    const long long w = idx % W;
    const long long h = (idx / W) % H;
    const long long nc = idx / (H * W);
    const long long n = nc / C, c = nc % C;
    const long long NP = N * OH * OW;
    // Output positions whose window holds padded pixel (h + pad_h, w + pad_w); the tap within
    // that window is i = h + pad_h - oh*stride, j = w + pad_w - ow*stride.
    const ZfRange oh_range = zf_covering(h + pad_h, kh, stride, OH);
    const ZfRange ow_range = zf_covering(w + pad_w, kw, stride, OW);
    T acc = T(0);
    for (long long oh = oh_range.lo; oh <= oh_range.hi; ++oh) {
      const long long i = h + pad_h - oh * stride;
      for (long long ow = ow_range.lo; ow <= ow_range.hi; ++ow) {
        const long long j = w + pad_w - ow * stride;
        acc += cols[((c * kh + i) * kw + j) * NP + (n * OH + oh) * OW + ow];
      }
    }
    x[idx] = acc;
  }
}

#define ZF_CONV_KERNELS(T, SUF)                                                              \
  extern "C" __global__ void im2col_##SUF(const T* x, T* cols, long long N, long long C,     \
                                          long long H, long long W, long long kh,            \
                                          long long kw, long long stride, long long pad_h,   \
                                          long long pad_w, long long OH, long long OW) {     \
    im2col<T>(x, cols, N, C, H, W, kh, kw, stride, pad_h, pad_w, OH, OW);                    \
  }                                                                                          \
  extern "C" __global__ void col2im_##SUF(const T* cols, T* x, long long N, long long C,     \
                                          long long H, long long W, long long kh,            \
                                          long long kw, long long stride, long long pad_h,   \
                                          long long pad_w, long long OH, long long OW) {     \
    col2im<T>(cols, x, N, C, H, W, kh, kw, stride, pad_h, pad_w, OH, OW);                    \
  }

ZF_CONV_KERNELS(float, f32)
ZF_CONV_KERNELS(double, f64)
