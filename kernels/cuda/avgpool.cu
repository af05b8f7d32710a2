// Siblings  reference zfraw/ops/avgpool.py
//           Numba     kernels/numba/avgpool.py
//           CUDA      kernels/cuda/avgpool.py (launchers), kernels/cuda/avgpool.cu
//           cases     kernels/kernel_cases.py (AVGPOOLS)
//           benchmark `python -m benchmarks.op avgpool_fwd`  (or avgpool_bwd)
//
// Average pooling (ONNX's AveragePool) and its backward (= the deconvnet's rule for it: each
// dy / its divisor spread evenly over its window's input pixels). A kh x kw window, one stride,
// pads (top, left, bottom, right), the output size (OH, OW) from the launcher (ceil_mode is
// only a larger output). The divisor, as zfraw/ops/avgpool.py defines it: the window's taps
// inside the input, or with include_pad those inside the padded input, rows
// [h0, min(h0 + kh, H + pad_b)) times columns [w0, min(w0 + kw, W + pad_r)).
// Differences from the NumPy reference:
// - forward: one thread per output sums its window clipped to the image, instead of kh*kw
//   whole-tensor adds over a zero-padded copy.
// - backward: a gather, one thread per input pixel summing dy / divisor of every window that
//   covers it, in place of the reference's kh*kw scatter-adds. No atomics, fixed sum order:
//   deterministic.
#include "common.cuh"

// The taps of window [start, start + k) that the divisor counts along one axis.
__device__ __forceinline__ long long zf_avg_count(long long start, long long k, long long size,
                                                  long long pad_end, long long include_pad) {
  const long long end = include_pad ? size + pad_end : size;
  const long long hi = start + k < end ? start + k : end;
  const long long lo = include_pad || start > 0 ? start : 0;
  return hi - lo;
}

// x: (N, C, H, W) -> y: (N, C, OH, OW); both contiguous.
template <typename T>
__device__ void avgpool_fwd(const T* __restrict__ x, T* __restrict__ y, long long NC,
                            long long H, long long W, long long kh, long long kw,
                            long long stride, long long pad_t, long long pad_l, long long pad_b,
                            long long pad_r, long long include_pad, long long OH, long long OW) {
  ZF_FOR_EACH(idx, NC * OH * OW) {
    const long long ow = idx % OW;
    const long long oh = (idx / OW) % OH;
    const T* plane = x + (idx / (OH * OW)) * H * W;  // the (n, c) input plane
    const long long h0 = oh * stride - pad_t;  // window's top-left in unpadded coordinates
    const long long w0 = ow * stride - pad_l;
    const long long i0 = h0 > 0 ? h0 : 0, i1 = h0 + kh < H ? h0 + kh : H;
    const long long j0 = w0 > 0 ? w0 : 0, j1 = w0 + kw < W ? w0 + kw : W;
    T acc = T(0);
    for (long long i = i0; i < i1; ++i) {
      for (long long j = j0; j < j1; ++j) acc += plane[i * W + j];
    }
    const long long div = zf_avg_count(h0, kh, H, pad_b, include_pad) *
                          zf_avg_count(w0, kw, W, pad_r, include_pad);
    y[idx] = acc / T(div);
  }
}

// dy: (N, C, OH, OW) -> dx: (N, C, H, W); both contiguous.
template <typename T>
__device__ void avgpool_bwd(const T* __restrict__ dy, T* __restrict__ dx, long long NC,
                            long long H, long long W, long long kh, long long kw,
                            long long stride, long long pad_t, long long pad_l, long long pad_b,
                            long long pad_r, long long include_pad, long long OH, long long OW) {
  ZF_FOR_EACH(idx, NC * H * W) {
    const long long w = idx % W;
    const long long h = (idx / W) % H;
    const T* dy_plane = dy + (idx / (H * W)) * OH * OW;  // the (n, c) output plane
    // The windows holding padded pixel (h + pad_t, w + pad_l).
    const ZfRange oh_range = zf_covering(h + pad_t, kh, stride, OH);
    const ZfRange ow_range = zf_covering(w + pad_l, kw, stride, OW);
    T acc = T(0);
    for (long long oh = oh_range.lo; oh <= oh_range.hi; ++oh) {
      const long long rows = zf_avg_count(oh * stride - pad_t, kh, H, pad_b, include_pad);
      for (long long ow = ow_range.lo; ow <= ow_range.hi; ++ow) {
        const long long cols = zf_avg_count(ow * stride - pad_l, kw, W, pad_r, include_pad);
        acc += dy_plane[oh * OW + ow] / T(rows * cols);
      }
    }
    dx[idx] = acc;
  }
}

#define ZF_AVGPOOL_KERNELS(T, SUF)                                                           \
  extern "C" __global__ void avgpool_fwd_##SUF(const T* x, T* y, long long NC, long long H,  \
                                               long long W, long long kh, long long kw,      \
                                               long long stride, long long pad_t,            \
                                               long long pad_l, long long pad_b,             \
                                               long long pad_r, long long include_pad,       \
                                               long long OH, long long OW) {                 \
    avgpool_fwd<T>(x, y, NC, H, W, kh, kw, stride, pad_t, pad_l, pad_b, pad_r, include_pad,  \
                   OH, OW);                                                                  \
  }                                                                                          \
  extern "C" __global__ void avgpool_bwd_##SUF(const T* dy, T* dx, long long NC, long long H, \
                                               long long W, long long kh, long long kw,      \
                                               long long stride, long long pad_t,            \
                                               long long pad_l, long long pad_b,             \
                                               long long pad_r, long long include_pad,       \
                                               long long OH, long long OW) {                 \
    avgpool_bwd<T>(dy, dx, NC, H, W, kh, kw, stride, pad_t, pad_l, pad_b, pad_r, include_pad,\
                   OH, OW);                                                                  \
  }

ZF_AVGPOOL_KERNELS(float, f32)
ZF_AVGPOOL_KERNELS(double, f64)
