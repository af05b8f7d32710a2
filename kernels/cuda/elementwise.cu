// Siblings  reference zfraw/ops/elementwise.py
//           Numba     kernels/numba/elementwise.py  (no dropout_fwd: the reference runs)
//           CUDA      kernels/cuda/elementwise.py (launchers), kernels/cuda/elementwise.cu
//           cases     kernels/kernel_cases.py (RELU_SHAPES, DROPOUTS, SGD_CASES)
//           benchmark `python -m benchmarks.op relu_fwd`  (or relu_bwd, dropout_fwd, sgd_update)
//
// ReLU forward/backward, inverted dropout and the fused momentum SGD update, one thread per
// element (zfraw/ops/elementwise.py). Differences from the NumPy reference:
// - dropout: the same counter-based hash as _hash_uniform (index + seed*0x9E3779B9 through
//   Wellons' lowbias32, top 24 bits as a float32 in [0, 1)), so for a given seed the mask is
//   bit-identical to the reference's; it is computed in registers instead of in a temporary.
// - sgd_update: one pass over param/grad/velocity instead of three array operations.
#include "common.cuh"

// relu_fwd: y = max(x, 0). Written as x < 0 ? 0 : x so that NaN passes through, as np.maximum.
template <typename T>
__device__ void relu_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
  ZF_FOR_EACH(idx, n) { y[idx] = x[idx] < T(0) ? T(0) : x[idx]; }
}

// relu_bwd: dx = dy where the forward output y > 0, else 0.
template <typename T>
__device__ void relu_bwd(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                         long long n) {
  ZF_FOR_EACH(idx, n) { dx[idx] = y[idx] > T(0) ? dy[idx] : T(0); }
}

// The reference's _hash_uniform for one index: a float32 in [0, 1) with 24 random bits.
// All arithmetic is on unsigned 32-bit integers, wrapping like NumPy's uint32.
__device__ __forceinline__ float zf_hash_uniform(unsigned int index, unsigned int seed_offset) {
  unsigned int h = index + seed_offset;  // seed_offset = (seed * 0x9E3779B9) mod 2^32
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return (float)(h >> 8) * (1.0f / 16777216.0f);  // exact: h >> 8 < 2^24
}

// dropout: keep where u >= p (u, p as float32, as the reference compares them), then
// mask = keep ? 1/(1-p) : 0 in T, y = x * mask. The index is the flat element index, cast to
// uint32 as the reference's uint32 arange.
template <typename T>
__device__ void dropout_fwd(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask,
                            long long n, float p, T keep_scale, unsigned int seed_offset) {
  ZF_FOR_EACH(idx, n) {
    const bool keep = zf_hash_uniform((unsigned int)idx, seed_offset) >= p;
    const T m = keep ? keep_scale : T(0);
    mask[idx] = m;
    y[idx] = x[idx] * m;
  }
}

// sgd_update, in place: v = momentum*v - lr*(g + wd*p); p += v.
template <typename T>
__device__ void sgd_update(T* __restrict__ param, const T* __restrict__ grad,
                           T* __restrict__ velocity, long long n, T lr, T momentum, T wd) {
  ZF_FOR_EACH(idx, n) {
    const T p = param[idx];
    // As the reference: no decay term at all when wd == 0 (0*inf would be NaN).
    const T step = wd != T(0) ? grad[idx] + wd * p : grad[idx];
    const T v = momentum * velocity[idx] - lr * step;
    velocity[idx] = v;
    param[idx] = p + v;
  }
}

#define ZF_ELEMENTWISE_KERNELS(T, SUF)                                                        \
  extern "C" __global__ void relu_fwd_##SUF(const T* x, T* y, long long n) {                 \
    relu_fwd<T>(x, y, n);                                                                     \
  }                                                                                           \
  extern "C" __global__ void relu_bwd_##SUF(const T* dy, const T* y, T* dx, long long n) {   \
    relu_bwd<T>(dy, y, dx, n);                                                                \
  }                                                                                           \
  extern "C" __global__ void dropout_fwd_##SUF(const T* x, T* y, T* mask, long long n,       \
                                               float p, T keep_scale,                         \
                                               unsigned int seed_offset) {                    \
    dropout_fwd<T>(x, y, mask, n, p, keep_scale, seed_offset);                                \
  }                                                                                           \
  extern "C" __global__ void sgd_update_##SUF(T* param, const T* grad, T* velocity,          \
                                              long long n, T lr, T momentum, T wd) {          \
    sgd_update<T>(param, grad, velocity, n, lr, momentum, wd);                                \
  }

ZF_ELEMENTWISE_KERNELS(float, f32)
ZF_ELEMENTWISE_KERNELS(double, f64)
