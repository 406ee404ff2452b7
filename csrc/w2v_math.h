// Math shared by the word2vec loss kernels: numerically stable sigmoid and log-sigmoid, and a dot product of a
// stored row (any storage type) with an accumulator row.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.h"

namespace fastrepr {

template <typename Acc>
inline Acc sigmoid(Acc x) {
  // exp of a non-positive argument only: no overflow for large |x|.
  if (x >= Acc(0)) return Acc(1) / (Acc(1) + std::exp(-x));
  const Acc e = std::exp(x);
  return e / (Acc(1) + e);
}

// log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
template <typename Acc>
inline Acc log_sigmoid(Acc x) {
  return (x < Acc(0) ? x : Acc(0)) - std::log1p(std::exp(-std::abs(x)));
}

// sum_d w[d] * h[d] with 8 partial sums, which the compiler maps onto SIMD lanes (a single running sum could
// not be vectorized without reassociating it).
template <typename T, typename Acc, typename H>
inline Acc dot_row(const T* w, const H* h, int64_t D) {
  Acc acc[8] = {};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int k = 0; k < 8; ++k)
      acc[k] += static_cast<Acc>(to_float(w[d + k])) * static_cast<Acc>(to_float(h[d + k]));
  Acc s = Acc(0);
  for (; d < D; ++d) s += static_cast<Acc>(to_float(w[d])) * static_cast<Acc>(to_float(h[d]));
  return s + ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

}  // namespace fastrepr
