#include "hierarchical_softmax.h"

#include <cmath>
#include <limits>
#include <vector>

#include "common.h"
#include "scatter.h"
#include "w2v_math.h"

namespace fastrepr {

namespace {

// Codes are branch bits: a byte other than 0 or 1 would be read as 1 here but as (1 - 2c) by the other backends.
bool paths_ok(const int64_t* targets, const int64_t* points, const uint8_t* codes, const int64_t* lengths,
              const HierarchicalSoftmaxShape& s) {
  for (int64_t b = 0; b < s.B; ++b) {
    const int64_t t = targets[b];
    if (t < 0 || t >= s.V) return false;
    if (lengths[t] < 0 || lengths[t] > s.L) return false;
    for (int64_t j = 0; j < lengths[t]; ++j)
      if (points[t * s.L + j] < 0 || points[t * s.L + j] >= s.N || codes[t * s.L + j] > 1) return false;
  }
  return true;
}


}  // namespace

template <typename T, typename Acc>
bool hierarchical_softmax_forward(const T* h, const T* w_nodes, const int64_t* targets, const int64_t* points,
                                  const uint8_t* codes, const int64_t* lengths, HierarchicalSoftmaxShape s,
                                  Acc* loss, int num_threads) {
  if (!paths_ok(targets, points, codes, lengths, s)) return false;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads))
#endif
  for (int64_t b = 0; b < s.B; ++b) {
    const int64_t t = targets[b];
    Acc l = Acc(0);
    bool finite = true;
    for (int64_t j = 0; j < lengths[t]; ++j) {
      const Acc sc = dot_row<T, Acc>(w_nodes + points[t * s.L + j] * s.D, h + b * s.D, s.D);
      finite &= std::isfinite(sc);
      l -= log_sigmoid(codes[t * s.L + j] ? -sc : sc);
    }
    // a non-finite score gives NaN, not the plausible 0 of log sigmoid(+inf) (the caller raises on it)
    loss[b] = finite ? l : std::numeric_limits<Acc>::quiet_NaN();
  }
  return true;
}

template <typename T, typename Acc>
bool hierarchical_softmax_backward(const T* h, const T* w_nodes, const int64_t* targets, const int64_t* points,
                                   const uint8_t* codes, const int64_t* lengths, HierarchicalSoftmaxShape s,
                                   const Acc* grad, Acc* d_h, Acc* d_nodes, bool sparse, int num_threads) {
  if (!paths_ok(targets, points, codes, lengths, s)) return false;
  const int64_t D = s.D, L = s.L;
  std::vector<Acc> e(s.B * L, Acc(0)), hacc(sparse ? 0 : s.B * D);
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads))
#endif
  for (int64_t b = 0; b < s.B; ++b) {
    const int64_t t = targets[b];
    const T* hb = h + b * D;
    Acc* dhb = d_h + b * D;
    for (int64_t d = 0; d < D; ++d) dhb[d] = Acc(0);
    if (!sparse)
      for (int64_t d = 0; d < D; ++d) hacc[b * D + d] = static_cast<Acc>(to_float(hb[d]));
    for (int64_t j = 0; j < L; ++j) {
      Acc ebj = Acc(0);
      if (j < lengths[t]) {
        const T* w = w_nodes + points[t * L + j] * D;
        ebj = grad[b] * (sigmoid(dot_row<T, Acc>(w, hb, D)) - (codes[t * L + j] ? Acc(0) : Acc(1)));
        for (int64_t d = 0; d < D; ++d) dhb[d] += ebj * static_cast<Acc>(to_float(w[d]));
      }
      e[b * L + j] = ebj;
      if (sparse) {
        Acc* o = d_nodes + (b * L + j) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = ebj * static_cast<Acc>(to_float(hb[d]));
      }
    }
  }
  if (!sparse)
    scatter_add_rows(
        d_nodes, D, s.B * L,
        [&](int64_t i) { return (i % L) < lengths[targets[i / L]] ? points[targets[i / L] * L + i % L] : int64_t(0); },
        [&](int64_t i) { return e[i]; }, [&](int64_t i) { return hacc.data() + (i / L) * D; }, num_threads);
  return true;
}

#define FASTREPR_INSTANTIATE(T, Acc)                                                                         \
  template bool hierarchical_softmax_forward<T, Acc>(const T*, const T*, const int64_t*, const int64_t*,       \
                                                     const uint8_t*, const int64_t*, HierarchicalSoftmaxShape, \
                                                     Acc*, int);                                               \
  template bool hierarchical_softmax_backward<T, Acc>(const T*, const T*, const int64_t*, const int64_t*,      \
                                                      const uint8_t*, const int64_t*,                          \
                                                      HierarchicalSoftmaxShape, const Acc*, Acc*, Acc*, bool, int);
FASTREPR_FOR_EACH_FLOAT(FASTREPR_INSTANTIATE)
#undef FASTREPR_INSTANTIATE

}  // namespace fastrepr
