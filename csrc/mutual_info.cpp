#include "mutual_info.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace fastrepr {

namespace {

// MI in nats of a (rows x cols) contingency table of N samples. Terms use log(N c / (a b)) with the products
// formed exactly in double (integers below 2^53), so independent or degenerate tables give exactly 0.
double table_mutual_info(const std::vector<int64_t>& c, int64_t rows, int64_t cols, int64_t N,
                         std::vector<int64_t>& a, std::vector<int64_t>& b) {
  std::fill(a.begin(), a.end(), 0);
  std::fill(b.begin(), b.end(), 0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      a[i] += c[i * cols + j];
      b[j] += c[i * cols + j];
    }
  const double n = static_cast<double>(N);
  double mi = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    if (a[i] == 0) continue;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t cij = c[i * cols + j];
      if (cij == 0) continue;
      const double cd = static_cast<double>(cij);
      mi += cd / n * std::log((n * cd) / (static_cast<double>(a[i]) * static_cast<double>(b[j])));
    }
  }
  return std::max(mi, 0.0);
}

}  // namespace

template <typename T>
bool histogram_mutual_info(const T* x, int64_t N, int64_t D, const T* edges, int64_t B, const int64_t* labels,
                           int64_t F, int64_t num_labels, double* out, int num_threads) {
  const int threads = clamp_threads(num_threads);
  (void)threads;
  // Discretize once per column: the number of edges <= x, i.e. np.digitize with increasing edges.
  std::vector<int32_t> bins(static_cast<size_t>(D * N));
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (int64_t d = 0; d < D; ++d) {
    const T* e = edges + d * B;
    for (int64_t n = 0; n < N; ++n) {
      const T v = x[n * D + d];
      int32_t count = 0;
      for (int64_t k = 0; k < B; ++k) count += e[k] <= v ? 1 : 0;
      bins[d * N + n] = count;
    }
  }
  const bool self = labels == nullptr;
  const int64_t K = self ? B + 1 : num_labels, rows = B + 1, pairs = D * F;
  int bad = 0;
  ParallelGuard guard;  // the per-thread tables are allocated inside the region
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(threads) reduction(| : bad)
#endif
  {
    std::vector<int64_t> table, a, b;
    guard.run([&] {
      table.resize(static_cast<size_t>(rows * K));
      a.resize(static_cast<size_t>(rows));
      b.resize(static_cast<size_t>(K));
    });
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(dynamic)
#endif
    for (int64_t pair = 0; pair < pairs; ++pair) {
      if (guard.failed()) continue;
      const int64_t d = pair / F, f = pair % F;
      std::fill(table.begin(), table.end(), 0);
      const int32_t* bx = bins.data() + d * N;
      bool ok = true;
      if (self) {
        const int32_t* by = bins.data() + f * N;
        for (int64_t n = 0; n < N; ++n) ++table[bx[n] * K + by[n]];
      } else {
        for (int64_t n = 0; n < N; ++n) {
          const int64_t y = labels[n * F + f];
          if (y < 0 || y >= K) { ok = false; break; }
          ++table[bx[n] * K + y];
        }
      }
      if (!ok) { bad = 1; continue; }
      out[pair] = table_mutual_info(table, rows, K, N, a, b);
    }
  }
  guard.rethrow();
  return bad == 0;
}

template bool histogram_mutual_info<float>(const float*, int64_t, int64_t, const float*, int64_t, const int64_t*,
                                           int64_t, int64_t, double*, int);
template bool histogram_mutual_info<double>(const double*, int64_t, int64_t, const double*, int64_t,
                                            const int64_t*, int64_t, int64_t, double*, int);

}  // namespace fastrepr
