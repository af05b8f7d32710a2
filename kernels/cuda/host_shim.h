// Host emulation of the few CUDA features kernels/cuda/*.cu use, so that g++ can compile the
// kernels unchanged (g++ -x c++ -include kernels/cuda/host_shim.h kernels/cuda/x.cu) and the
// tests and `python -m benchmarks.op` can run them on the CPU through ctypes
// (kernels/cuda/emulator.py).
//
// Model: the host driver runs the blocks of a launch one after another; within a block every
// CUDA thread is a real host thread (so __syncthreads is a real barrier). threadIdx/blockIdx
// are thread-local, __shared__ variables become function statics (one block at a time, so one
// copy is right). This checks index math, loop bounds, reductions and barriers; it says
// nothing about GPU timing, memory coalescing, or compilation by NVRTC.
#pragma once
#include <math.h>

#include <condition_variable>
#include <cstring>
#include <mutex>

struct zf_dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
static thread_local zf_dim3 threadIdx, blockIdx;
static zf_dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

// A reusable barrier for the threads of the running block.
struct ZfBarrier {
  std::mutex m;
  std::condition_variable cv;
  unsigned int waiting = 0, generation = 0;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    const unsigned int gen = generation;
    if (++waiting == blockDim.x) {
      waiting = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return gen != generation; });
    }
  }
};
static ZfBarrier zf_barrier;
inline void __syncthreads() { zf_barrier.wait(); }

inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline double __longlong_as_double(long long i) {
  double d;
  std::memcpy(&d, &i, sizeof d);
  return d;
}

// Called by the driver: the launch shape, then, in each host thread, its block and thread.
extern "C" void zf_emu_configure(unsigned int grid, unsigned int block) {
  gridDim.x = grid;
  blockDim.x = block;
}
extern "C" void zf_emu_set_thread(unsigned int block, unsigned int thread) {
  blockIdx.x = block;
  threadIdx.x = thread;
}
