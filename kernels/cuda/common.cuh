// Helpers shared by kernels/cuda/*.cu. The launcher's loader pastes this file in place of the
// #include line, so CuPy's compile cache (keyed on the source text) sees any change to it;
// nvcc resolves the #include itself.
//
// The declaration form every kernel file keeps, which the CPU emulator
// (kernels/cuda/emulator.py) parses to check each launch's arguments against the C signature:
// - the kernel body is a template `template <typename T> __device__ void NAME(...)`;
// - its entry points are declared inside one macro taking (T, SUF), on one logical line each
//   (backslash continuations are fine):
//       extern "C" __global__ void NAME_##SUF(PARAMS) { NAME<T>(...); }
//   and the macro is instantiated as (float, f32) and (double, f64); the launcher asks for
//   "NAME_f32" or "NAME_f64" (_loader.suffix). A variant is another NAME (lrn_fwd_ring).
// - PARAMS are `const T*` / `T*` / `const long long*` / `unsigned char*` pointers and `T`,
//   `long long`, `float`, `double` or `unsigned int` scalars, each with a name, no defaults;
//   the launcher passes NumPy/CuPy scalars of exactly that width (_loader.i64 for long long);
// - one-dimensional grids and blocks (blockIdx.x, threadIdx.x, blockDim.x, gridDim.x), loops
//   that are correct for any grid (ZF_FOR_EACH), block sizes that are powers of two where a
//   reduction needs it; __shared__ arrays of a fixed size and __syncthreads only (the emulator
//   runs a block's threads as host threads and the blocks one after another).
#ifndef ZF_COMMON_CUH
#define ZF_COMMON_CUH

// Grid-stride loop over [0, total): one element per thread per pass, so any grid size is
// correct and the launcher may cap the grid. 64-bit indices: large batches exceed 2^31.
#define ZF_FOR_EACH(idx, total)                                                  \
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;         \
       idx < (long long)(total); idx += (long long)blockDim.x * gridDim.x)

// The windows covering a position, for the gather form of an adjoint (col2im, unpooling).
// Window o (0 <= o < n_out) covers padded positions [o*stride, o*stride + k). It covers p when
//   o*stride <= p      <=>  o <= p / stride                  (floor division, p >= 0)
//   p < o*stride + k   <=>  o >  (p - k) / stride  <=>  o >= (p - k) / stride + 1  (p >= k)
// and every o >= 0 satisfies the second when p < k. Empty when lo > hi.
struct ZfRange {
  long long lo, hi;  // inclusive bounds
};

__device__ __forceinline__ ZfRange zf_covering(long long p, long long k, long long stride,
                                               long long n_out) {
  ZfRange r;
  r.lo = p < k ? 0 : (p - k) / stride + 1;
  r.hi = p / stride < n_out - 1 ? p / stride : n_out - 1;
  return r;
}

// float/double overloads, so templated kernels call the single-precision functions for float.
__device__ __forceinline__ float zf_exp(float x) { return expf(x); }
__device__ __forceinline__ double zf_exp(double x) { return exp(x); }
__device__ __forceinline__ float zf_log(float x) { return logf(x); }
__device__ __forceinline__ double zf_log(double x) { return log(x); }
__device__ __forceinline__ float zf_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double zf_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float zf_nan(float) { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ double zf_nan(double) {
  return __longlong_as_double(0x7ff8000000000000LL);
}

#endif  // ZF_COMMON_CUH
