#include "silhouette.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace fastrepr {

namespace {

inline int thread_id() {
#ifdef FASTREPR_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SILHOUETTE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SILHOUETTE_CLONES
#endif

// The pairs of row i whose expansion may have cancelled, recomputed exactly in double (rare). Returns whether
// any was.
bool exact_where_cancelled(float* row, int64_t j0, int64_t j1, float sx, const float* sqy, const float* xi,
                           const float* yr, int64_t D, float exact_below) {
  bool any = false;
  for (int64_t j = j0; j < j1; ++j) {
    if (!(row[j] < exact_below * (sx + sqy[j]))) continue;
    const float* yj = yr + j * D;
    double exact = 0.0;
    for (int64_t k = 0; k < D; ++k) {
      const double diff = static_cast<double>(xi[k]) - static_cast<double>(yj[k]);
      exact += diff * diff;
    }
    row[j] = static_cast<float>(exact);
    any = true;
  }
  return any;
}

// Sum of v[0:n] in double: eight partial sums (vectorized), combined in a fixed order.
inline double sum_double(const float* v, int64_t n) {
  double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) p[k] += v[j + k];
  for (; j < n; ++j) p[j & 7] += v[j];
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

// Row i of the tile: distances in place, per-segment sums into sums_row [C], the distances added into col
// (this thread's column sums, or null). Vector passes per segment: the expansion and its cancellation test;
// the square root (vectorized because the build passes -fno-math-errno for this file: its argument is
// never < 0, so errno is never set); the row sum; then the column sums of the row. (One fused pass of the
// last three did not vectorize, and ran 2.5x slower.)
SILHOUETTE_CLONES void tile_row(float* row, float sx, const float* sqy, const float* xi, const float* yr,
                                int64_t D, const int64_t* seg_start, const int64_t* seg_label, int64_t S,
                                double* sums_row, double* col, float exact_below, int64_t self_col) {
  for (int64_t s = 0; s < S; ++s) {
    const int64_t j0 = seg_start[s], j1 = seg_start[s + 1];
    int suspect = 0;
#pragma omp simd reduction(| : suspect)
    for (int64_t j = j0; j < j1; ++j) {
      const float d2 = sx + sqy[j] - 2.0f * row[j];
      suspect |= d2 < exact_below * (sx + sqy[j]);
      row[j] = d2;
    }
    if (suspect) exact_where_cancelled(row, j0, j1, sx, sqy, xi, yr, D, exact_below);
    if (self_col >= j0 && self_col < j1) row[self_col] = 0.0f;
    for (int64_t j = j0; j < j1; ++j) row[j] = std::sqrt(row[j] > 0.0f ? row[j] : 0.0f);
    sums_row[seg_label[s]] += sum_double(row + j0, j1 - j0);
  }
  if (col)
    for (int64_t j = 0; j < seg_start[S]; ++j) col[j] += row[j];
}

}  // namespace

bool silhouette_tile(float* g, int64_t R, int64_t B2, const float* sqx, const float* sqy, const float* xr,
                     const float* yr, int64_t D, const int64_t* seg_start, const int64_t* seg_label, int64_t S,
                     double* row_sums, int64_t C, double* col_sums, float exact_below, int64_t diag,
                     int num_threads) {
  if (S < 1 || seg_start[0] != 0 || seg_start[S] != B2) return false;
  for (int64_t s = 0; s < S; ++s)
    if (seg_start[s + 1] <= seg_start[s] || seg_label[s] < 0 || seg_label[s] >= C) return false;
  const int threads = clamp_threads(num_threads);
  std::vector<std::vector<double>> cols(col_sums ? threads : 0, std::vector<double>(col_sums ? B2 : 0, 0.0));
#pragma omp parallel num_threads(threads)
  {
    double* col = col_sums ? cols[thread_id()].data() : nullptr;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < R; ++i)
      tile_row(g + i * B2, sqx[i], sqy, xr + i * D, yr, D, seg_start, seg_label, S, row_sums + i * C, col,
               exact_below, diag >= 0 ? i + diag : -1);
  }
  for (auto& part : cols)
    for (int64_t j = 0; j < B2; ++j) col_sums[j] += part[j];
  return true;
}

}  // namespace fastrepr
