// Numerically stable sigmoid and log-sigmoid shared by the word2vec loss kernels.
#pragma once
#include <cmath>

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

}  // namespace fastrepr
