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

inline float finish(float d2, bool cosine) {
  return cosine ? std::min(std::max(0.5f * d2, 0.0f), 2.0f) : std::sqrt(std::max(d2, 0.0f));
}

// Row i of the tile: distances in place, per-segment sums into sums_row [C].
void tile_row(float* row, float sx, const float* sqy, const double* xi, const double* y64,
              int64_t D, const int64_t* seg_start, const int64_t* seg_label, int64_t S, double* sums_row,
              bool cosine, float exact_below, int64_t self_col) {
  for (int64_t s = 0; s < S; ++s) {
    const int64_t j0 = seg_start[s], j1 = seg_start[s + 1];
    int suspect = 0;
#pragma omp simd reduction(| : suspect)
    for (int64_t j = j0; j < j1; ++j) {
      const float d2 = sx + sqy[j] - 2.0f * row[j];
      suspect |= d2 < exact_below * (sx + sqy[j]);
      row[j] = d2;
    }
    if (suspect) {  // rare: the pairs whose expansion may have cancelled, recomputed exactly in double
      for (int64_t j = j0; j < j1; ++j) {
        if (!(row[j] < exact_below * (sx + sqy[j]))) continue;
        const double* yj = y64 + j * D;
        double exact = 0.0;
        for (int64_t k = 0; k < D; ++k) exact += (xi[k] - yj[k]) * (xi[k] - yj[k]);
        row[j] = static_cast<float>(exact);
      }
    }
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = j0; j < j1; ++j) {
      const float v = j == self_col ? 0.0f : finish(row[j], cosine);
      row[j] = v;
      acc += v;
    }
    sums_row[seg_label[s]] += acc;
  }
}

}  // namespace

bool silhouette_tile(float* g, int64_t R, int64_t B2, const float* sqx, const float* sqy, const double* x64,
                     const double* y64, int64_t D, const int64_t* seg_start, const int64_t* seg_label, int64_t S,
                     double* row_sums, int64_t C, double* col_sums, bool cosine, float exact_below, int64_t diag,
                     int num_threads) {
  if (S < 1 || seg_start[0] != 0 || seg_start[S] != B2) return false;
  for (int64_t s = 0; s < S; ++s)
    if (seg_start[s + 1] <= seg_start[s] || seg_label[s] < 0 || seg_label[s] >= C) return false;
  const int threads = clamp_threads(num_threads);
  std::vector<std::vector<double>> cols(col_sums ? threads : 0, std::vector<double>(col_sums ? B2 : 0, 0.0));
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < R; ++i) {
      float* row = g + i * B2;
      tile_row(row, sqx[i], sqy, x64 + i * D, y64, D, seg_start, seg_label, S, row_sums + i * C, cosine,
               exact_below, diag >= 0 ? i + diag : -1);
      if (col_sums) {
        double* acc = cols[t].data();
#pragma omp simd
        for (int64_t j = 0; j < B2; ++j) acc[j] += row[j];
      }
    }
  }
  for (auto& part : cols)
    for (int64_t j = 0; j < B2; ++j) col_sums[j] += part[j];
  return true;
}

}  // namespace fastrepr
