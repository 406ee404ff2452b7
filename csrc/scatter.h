// Deterministic scatter-add of scaled rows into a dense [rows, D] table with threads: thread t owns the rows
// r with r % T == t and visits the updates in index order, so every row is summed in one fixed order whatever
// the thread count, without atomics. Each thread reads all n indices (cheap) and writes only its rows.
#pragma once
#include <cstdint>

#include "common.h"

namespace fastrepr {

// For i in [0, n): dst[row(i), :] += scale(i) * src(i)[:]   (src(i) returns a pointer to D values)
template <typename Acc, typename Row, typename Scale, typename Src>
void scatter_add_rows(Acc* dst, int64_t D, int64_t n, Row row, Scale scale, Src src, int num_threads) {
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(clamp_threads(num_threads))
#endif
  {
#ifdef FASTREPR_OPENMP
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    const int64_t t = 0, T = 1;
#endif
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = row(i);
      if (r % T != t) continue;
      const Acc a = scale(i);
      if (a == Acc(0)) continue;
      const Acc* x = src(i);
      Acc* o = dst + r * D;
      for (int64_t d = 0; d < D; ++d) o[d] += a * x[d];
    }
  }
}

}  // namespace fastrepr
