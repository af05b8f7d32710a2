// Siblings  reference zfraw/ops/loss.py
//           Numba     kernels/numba/loss.py
//           CUDA      kernels/cuda/loss.py (launchers), kernels/cuda/loss.cu
//           cases     kernels/kernel_cases.py (XENT_CASES)
//           benchmark `python -m benchmarks.op softmax_xent`  (or softmax_xent_bwd)
//
// Softmax with cross-entropy (zfraw/ops/loss.py), numerically stable:
//   m = max_k z[k], log_z = log(sum_k exp(z[k] - m)), probs[k] = exp(z[k] - m - log_z),
//   row_loss = log_z - (z[label] - m); the launcher takes the mean of row_loss on the device.
// Differences from the NumPy reference: one block per row (a grid-stride loop over rows), with
// the max and the sum as shared-memory tree reductions. An out-of-range label gives a NaN row
// loss (and no one-hot term in the backward) where the reference raises IndexError: checking
// it on the host would force a device-to-host copy every step.
#include "common.cuh"

#define ZF_MAX_THREADS 1024  // the launcher's block size is a power of two, at most this

// Reduces v over the block: the max when take_max, else the sum. Every thread gets the result.
// blockDim.x must be a power of two; red holds blockDim.x values.
template <typename T>
__device__ T zf_block_reduce(T v, T* red, bool take_max) {
  const unsigned int t = threadIdx.x;
  red[t] = v;
  __syncthreads();
  for (unsigned int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) {
      const T other = red[t + half];
      red[t] = take_max ? (other > red[t] ? other : red[t]) : red[t] + other;
    }
    __syncthreads();
  }
  const T result = red[0];
  __syncthreads();  // everyone has read red[0] before the next reduction overwrites it
  return result;
}

// logits: (N, K), labels: (N,) int64 -> probs: (N, K), row_loss: (N,); all contiguous.
template <typename T>
__device__ void softmax_xent(const T* __restrict__ logits, const long long* __restrict__ labels,
                             T* __restrict__ probs, T* __restrict__ row_loss, long long N,
                             long long K) {
  __shared__ T red[ZF_MAX_THREADS];
  const unsigned int t = threadIdx.x;
  // The loop bound depends only on blockIdx, so every thread of a block meets the same
  // __syncthreads calls.
  for (long long row = blockIdx.x; row < N; row += gridDim.x) {
    const T* z = logits + row * K;
    T m = z[0];  // each thread's running max starts from a real logit (no -inf constant)
    for (long long k = t; k < K; k += blockDim.x) m = z[k] > m ? z[k] : m;
    m = zf_block_reduce(m, red, true);
    T sum = T(0);
    for (long long k = t; k < K; k += blockDim.x) sum += zf_exp(z[k] - m);
    const T log_z = zf_log(zf_block_reduce(sum, red, false));
    for (long long k = t; k < K; k += blockDim.x) probs[row * K + k] = zf_exp(z[k] - m - log_z);
    if (t == 0) {
      const long long label = labels[row];
      row_loss[row] = (label >= 0 && label < K) ? log_z - (z[label] - m) : zf_nan(T(0));
    }
  }
}

// d = (probs - onehot(labels)) / N, probs: (N, K), one thread per element.
template <typename T>
__device__ void softmax_xent_bwd(const T* __restrict__ probs,
                                 const long long* __restrict__ labels, T* __restrict__ d,
                                 long long N, long long K) {
  ZF_FOR_EACH(idx, N * K) {
    const T onehot = labels[idx / K] == idx % K ? T(1) : T(0);
    d[idx] = (probs[idx] - onehot) / T(N);
  }
}

#define ZF_LOSS_KERNELS(T, SUF)                                                              \
  extern "C" __global__ void softmax_xent_##SUF(const T* logits, const long long* labels,    \
                                                T* probs, T* row_loss, long long N,          \
                                                long long K) {                               \
    softmax_xent<T>(logits, labels, probs, row_loss, N, K);                                  \
  }                                                                                          \
  extern "C" __global__ void softmax_xent_bwd_##SUF(const T* probs, const long long* labels,  \
                                                    T* d, long long N, long long K) {        \
    softmax_xent_bwd<T>(probs, labels, d, N, K);                                             \
  }

ZF_LOSS_KERNELS(float, f32)
ZF_LOSS_KERNELS(double, f64)
