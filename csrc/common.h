// Shared helpers for the CPU kernels: storage types for 16-bit floats and their conversion to float,
// and OpenMP shims. Kernels take raw pointers and sizes; nothing here knows about torch or Python.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>

#ifdef FASTREPR_OPENMP
#include <omp.h>
#endif

// The (storage, accumulation) type pairs every float kernel is compiled for, the list that dispatch_float in
// bind_common.h dispatches over. X(T, Acc) is a kernel file's explicit-instantiation macro.
#define FASTREPR_FOR_EACH_FLOAT(X) X(float, float) X(double, double) X(bf16, float) X(fp16, float)

namespace fastrepr {

// 16-bit floats arrive as their raw bits (torch tensor viewed as int16 -> numpy buffer).
struct bf16 { uint16_t bits; };
struct fp16 { uint16_t bits; };

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float to_float(float x) { return x; }
inline double to_float(double x) { return x; }
// bfloat16 is the top half of an IEEE float32.
inline float to_float(bf16 x) { return bits_to_float(static_cast<uint32_t>(x.bits) << 16); }
// IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Re-bias the exponent to 127; subnormal halves
// are normalised by shifting the mantissa until its implicit bit appears.
inline float to_float(fp16 x) {
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  uint32_t exp = (x.bits >> 10) & 0x1fu;
  uint32_t mant = x.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return bits_to_float(sign);                                // +-0
    exp = 113;  // 127 - 14: value = mant * 2^-24 = 1.m * 2^(-14 - shifts)
    while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
    return bits_to_float(sign | (exp << 23) | ((mant & 0x3ffu) << 13));
  }
  return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
}

inline int clamp_threads(int requested) {
#ifdef FASTREPR_OPENMP
  return requested > 0 ? requested : omp_get_max_threads();
#else
  (void)requested;
  return 1;
#endif
}

// An exception must never leave an OpenMP region: the runtime would call std::terminate and take the Python
// interpreter down (a std::bad_alloc for a per-thread table did exactly that). Kernels run the work of a
// parallel region through run(), which keeps the first exception and makes the remaining work a no-op
// (failed()); rethrow() raises it after the region, where pybind11 turns it into a Python exception. Every
// thread still reaches the region's worksharing constructs and barriers, so nothing deadlocks.
class ParallelGuard {
 public:
  template <typename F>
  void run(F&& f) noexcept {
    if (failed()) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace fastrepr
