// Siblings  reference zfraw/ops/lrn.py
//           Numba     kernels/numba/lrn.py
//           CUDA      kernels/cuda/lrn.py (launchers), kernels/cuda/lrn.cu
//           cases     kernels/kernel_cases.py (LRNS)
//           benchmark `python -m benchmarks.op lrn_fwd`  (or lrn_bwd)
//
// Local response normalization across channels (ONNX window, as zfraw/ops/lrn.py):
//   scale[c] = bias + alpha/size * sum_{c' in [c - before, c + after]} x[c']^2
//   y[c] = x[c] * scale[c]^-beta,   before = (size-1)/2, after = size/2 (clipped to [0, C)).
//   dx[c] = dy[c]*scale[c]^-beta - 2*alpha*beta/size * x[c] * sum_{j in [c - after, c + before]}
//           dy[j]*y[j]/scale[j]
// Differences from the NumPy reference: one thread per element sums its own channel window
// (the reference adds whole shifted arrays), so the terms are summed in another order; the
// backward recomputes dy*y/scale for each window instead of storing it.
#include "common.cuh"

// x: (N, C, HW) contiguous -> y, scale: same shape. alpha_over_size = alpha / size.
template <typename T>
__device__ void lrn_fwd(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ scale,
                        long long N, long long C, long long HW, long long before,
                        long long after, T alpha_over_size, T beta, T bias) {
  ZF_FOR_EACH(idx, N * C * HW) {
    const long long c = (idx / HW) % C;
    const long long c0 = idx - c * HW;  // index of channel 0 at this (n, pixel)
    const long long lo = c - before > 0 ? c - before : 0;
    const long long hi = c + after < C - 1 ? c + after : C - 1;
    T sum = T(0);
    for (long long cc = lo; cc <= hi; ++cc) {
      const T v = x[c0 + cc * HW];
      sum += v * v;
    }
    const T s = bias + alpha_over_size * sum;
    scale[idx] = s;
    y[idx] = x[idx] * zf_pow(s, -beta);
  }
}

// Variant "cuda:ring": one thread per (image, pixel) walks the channels, keeping the window's
// x values in a ring of ZF_LRN_RING registers, so each x is read from memory once instead of
// `size` times. The window is summed in the same order over the same values as lrn_fwd: the
// results are bit-identical. The launcher uses it only for size <= ZF_LRN_RING.
#define ZF_LRN_RING 16

template <typename T>
__device__ void lrn_fwd_ring(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ scale,
                             long long N, long long C, long long HW, long long before,
                             long long after, T alpha_over_size, T beta, T bias) {
  ZF_FOR_EACH(idx, N * HW) {
    const long long c0 = (idx / HW) * C * HW + idx % HW;  // channel 0 at this (n, pixel)
    T ring[ZF_LRN_RING];
    long long loaded = 0;  // channels [0, loaded) have been read into the ring
    for (long long c = 0; c < C; ++c) {
      const long long lo = c - before > 0 ? c - before : 0;
      const long long hi = c + after < C - 1 ? c + after : C - 1;
      for (; loaded <= hi; ++loaded) ring[loaded % ZF_LRN_RING] = x[c0 + loaded * HW];
      T sum = T(0);
      for (long long cc = lo; cc <= hi; ++cc) {
        const T v = ring[cc % ZF_LRN_RING];
        sum += v * v;
      }
      const T s = bias + alpha_over_size * sum;
      scale[c0 + c * HW] = s;
      y[c0 + c * HW] = ring[c % ZF_LRN_RING] * zf_pow(s, -beta);
    }
  }
}

// dy, x, y, scale: (N, C, HW) contiguous -> dx. coef = 2*alpha*beta/size.
template <typename T>
__device__ void lrn_bwd(const T* __restrict__ dy, const T* __restrict__ x,
                        const T* __restrict__ y, const T* __restrict__ scale,
                        T* __restrict__ dx, long long N, long long C, long long HW,
                        long long before, long long after, T beta, T coef) {
  ZF_FOR_EACH(idx, N * C * HW) {
    const long long c = (idx / HW) % C;
    const long long c0 = idx - c * HW;
    // Channel c is in the window of channel j exactly when j is in [c - after, c + before].
    const long long lo = c - after > 0 ? c - after : 0;
    const long long hi = c + before < C - 1 ? c + before : C - 1;
    T acc = T(0);
    for (long long j = lo; j <= hi; ++j) {
      const long long t = c0 + j * HW;
      acc += dy[t] * y[t] / scale[t];
    }
    dx[idx] = dy[idx] * zf_pow(scale[idx], -beta) - coef * x[idx] * acc;
  }
}

#define ZF_LRN_KERNELS(T, SUF)                                                                \
  extern "C" __global__ void lrn_fwd_##SUF(const T* x, T* y, T* scale, long long N,           \
                                           long long C, long long HW, long long before,       \
                                           long long after, T alpha_over_size, T beta,        \
                                           T bias) {                                          \
    lrn_fwd<T>(x, y, scale, N, C, HW, before, after, alpha_over_size, beta, bias);            \
  }                                                                                           \
  extern "C" __global__ void lrn_fwd_ring_##SUF(const T* x, T* y, T* scale, long long N,      \
                                                long long C, long long HW, long long before,  \
                                                long long after, T alpha_over_size, T beta,   \
                                                T bias) {                                     \
    lrn_fwd_ring<T>(x, y, scale, N, C, HW, before, after, alpha_over_size, beta, bias);       \
  }                                                                                           \
  extern "C" __global__ void lrn_bwd_##SUF(const T* dy, const T* x, const T* y,               \
                                           const T* scale, T* dx, long long N, long long C,   \
                                           long long HW, long long before, long long after,   \
                                           T beta, T coef) {                                  \
    lrn_bwd<T>(dy, x, y, scale, dx, N, C, HW, before, after, beta, coef);                     \
  }

ZF_LRN_KERNELS(float, f32)
ZF_LRN_KERNELS(double, f64)
