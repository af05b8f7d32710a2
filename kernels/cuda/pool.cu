// Siblings  reference zfraw/ops/pool.py
//           Numba     kernels/numba/pool.py
//           CUDA      kernels/cuda/pool.py (launchers), kernels/cuda/pool.cu
//           cases     kernels/kernel_cases.py (POOLS, POOL_VALUES, POOLS_ASYM_CEIL)
//           benchmark `python -m benchmarks.op maxpool_fwd`  (or maxpool_bwd)
//
// Max pooling with uint8 switches, and its backward (= the deconvnet's unpooling).
// Switch = i*k + j, the row-major position of the maximum in the k x k window. The rule of
// zfraw/ops/pool.py, the same on every backend: padding taps are never candidates; the switch
// is the first real maximum in row-major order (strict '>' against a running maximum that
// starts at the first real tap), so a window whose real values are all -inf switches to its
// first real tap.
// Padding enters as the top and left pads (pad_h, pad_w) with the output size (OH, OW), so an
// asymmetric (top, left, bottom, right) pad and ceil_mode (a last window running past the
// padded input: its outside taps are skipped like padding) need nothing more.
// Differences from the NumPy reference:
// - forward: one thread per output scans its window, skipping the taps in the padding instead
//   of masking a padded copy.
// - backward: a gather, one thread per input pixel summing the dy of every window whose switch
//   points at that pixel, in place of the reference's k*k scatter-adds. No atomics, fixed sum
//   order: deterministic.
#include "common.cuh"

// x: (N, C, H, W) -> y, switches: (N, C, OH, OW); all contiguous.
template <typename T>
__device__ void maxpool_fwd(const T* __restrict__ x, T* __restrict__ y,
                            unsigned char* __restrict__ switches, long long NC, long long H,
                            long long W, long long k, long long stride, long long pad_h,
                            long long pad_w, long long OH, long long OW) {
  ZF_FOR_EACH(idx, NC * OH * OW) {
    const long long ow = idx % OW;
    const long long oh = (idx / OW) % OH;
    const T* plane = x + (idx / (OH * OW)) * H * W;  // the (n, c) input plane
    const long long h0 = oh * stride - pad_h;  // window's top-left in unpadded coordinates
    const long long w0 = ow * stride - pad_w;
    // Every window holds at least one real pixel (pad < k, checked by the launcher), so
    // `found` is always set by the end.
    T best = T(0);
    int best_tap = 0;
    bool found = false;
    for (int i = 0; i < k; ++i) {
      const long long h = h0 + i;
      if (h < 0 || h >= H) continue;
      for (int j = 0; j < k; ++j) {
        const long long w = w0 + j;
        if (w < 0 || w >= W) continue;
        const T v = plane[h * W + w];
        // The first real tap starts the maximum; then strict '>': an equal later value never
        // replaces the first.
        if (!found || v > best) {
          best = v;
          best_tap = i * (int)k + j;
          found = true;
        }
      }
    }
    y[idx] = best;
    switches[idx] = (unsigned char)best_tap;
  }
}

// dy, switches: (N, C, OH, OW) -> dx: (N, C, H, W); all contiguous.
template <typename T>
__device__ void maxpool_bwd(const T* __restrict__ dy, const unsigned char* __restrict__ switches,
                            T* __restrict__ dx, long long NC, long long H, long long W,
                            long long k, long long stride, long long pad_h, long long pad_w,
                            long long OH, long long OW) {
  ZF_FOR_EACH(idx, NC * H * W) {
    const long long w = idx % W;
    const long long h = (idx / W) % H;
    const long long plane = (idx / (H * W)) * OH * OW;  // offset of the (n, c) output plane
    // Windows holding padded pixel (h + pad_h, w + pad_w), at tap (i, j) within each.
    const ZfRange oh_range = zf_covering(h + pad_h, k, stride, OH);
    const ZfRange ow_range = zf_covering(w + pad_w, k, stride, OW);
    T acc = T(0);
    for (long long oh = oh_range.lo; oh <= oh_range.hi; ++oh) {
      const long long i = h + pad_h - oh * stride;
      for (long long ow = ow_range.lo; ow <= ow_range.hi; ++ow) {
        const long long j = w + pad_w - ow * stride;
        const long long o = plane + oh * OW + ow;
        if ((long long)switches[o] == i * k + j) acc += dy[o];
      }
    }
    dx[idx] = acc;
  }
}

#define ZF_POOL_KERNELS(T, SUF)                                                              \
  extern "C" __global__ void maxpool_fwd_##SUF(const T* x, T* y, unsigned char* switches,    \
                                               long long NC, long long H, long long W,       \
                                               long long k, long long stride, long long pad_h,\
                                               long long pad_w, long long OH, long long OW) {\
    maxpool_fwd<T>(x, y, switches, NC, H, W, k, stride, pad_h, pad_w, OH, OW);               \
  }                                                                                          \
  extern "C" __global__ void maxpool_bwd_##SUF(const T* dy, const unsigned char* switches,   \
                                               T* dx, long long NC, long long H, long long W,\
                                               long long k, long long stride, long long pad_h,\
                                               long long pad_w, long long OH, long long OW) {\
    maxpool_bwd<T>(dy, switches, dx, NC, H, W, k, stride, pad_h, pad_w, OH, OW);             \
  }

ZF_POOL_KERNELS(float, f32)
ZF_POOL_KERNELS(double, f64)
