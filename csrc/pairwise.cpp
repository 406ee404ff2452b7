#include "pairwise.h"

#include <cmath>

#include "common.h"

namespace fastrepr {

// Each output row is owned by one thread, so there are no races and the sum over b runs in a fixed order:
// results are deterministic and independent of the thread count. The row of `out` is the accumulator.
template <typename T, typename Acc>
void pairwise_abs_diff_mean_dense(const T* z1, const T* z2, Acc* out, int64_t P, int64_t B, int64_t D,
                                  int num_threads) {
  const Acc inv_b = Acc(1) / static_cast<Acc>(B);
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads))
#endif
  for (int64_t p = 0; p < P; ++p) {
    Acc* o = out + p * D;
    for (int64_t d = 0; d < D; ++d) o[d] = Acc(0);
    const T* a = z1 + p * B * D;
    const T* c = z2 + p * B * D;
    for (int64_t b = 0; b < B; ++b, a += D, c += D) {
      for (int64_t d = 0; d < D; ++d) o[d] += std::abs(static_cast<Acc>(to_float(a[d])) - static_cast<Acc>(to_float(c[d])));
    }
    for (int64_t d = 0; d < D; ++d) o[d] *= inv_b;
  }
}

template <typename T, typename Acc>
bool pairwise_abs_diff_mean_index(const T* z, int64_t N, int64_t D, const int64_t* i, const int64_t* j,
                                  int64_t P, int64_t B, Acc* out, int num_threads) {
  const Acc inv_b = Acc(1) / static_cast<Acc>(B);
  int bad = 0;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads)) reduction(| : bad)
#endif
  for (int64_t p = 0; p < P; ++p) {
    Acc* o = out + p * D;
    for (int64_t d = 0; d < D; ++d) o[d] = Acc(0);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t ri = i[p * B + b], rj = j[p * B + b];
      // The caller validates ranges; this guard only guarantees we never read out of bounds.
      if (ri < 0 || ri >= N || rj < 0 || rj >= N) { bad = 1; continue; }
      const T* a = z + ri * D;
      const T* c = z + rj * D;
      for (int64_t d = 0; d < D; ++d) o[d] += std::abs(static_cast<Acc>(to_float(a[d])) - static_cast<Acc>(to_float(c[d])));
    }
    for (int64_t d = 0; d < D; ++d) o[d] *= inv_b;
  }
  return bad == 0;
}

#define FASTREPR_INSTANTIATE(T, Acc)                                                                      \
  template void pairwise_abs_diff_mean_dense<T, Acc>(const T*, const T*, Acc*, int64_t, int64_t, int64_t, \
                                                     int);                                                \
  template bool pairwise_abs_diff_mean_index<T, Acc>(const T*, int64_t, int64_t, const int64_t*,          \
                                                     const int64_t*, int64_t, int64_t, Acc*, int);
FASTREPR_FOR_EACH_FLOAT(FASTREPR_INSTANTIATE)
#undef FASTREPR_INSTANTIATE

}  // namespace fastrepr
