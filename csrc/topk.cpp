// Running top-k merge (see topk.h). Each row is independent: OpenMP over rows, dynamic schedule because
// rows differ in how often a candidate beats the current k-th score.
//
// Per row the tile is scored in blocks of 32 columns into a small buffer (a loop the compiler vectorizes),
// and only blocks whose maximum reaches the row's current threshold are scanned element by element. After
// the first few blocks the threshold is high and almost every block is skipped, so the cost is about one
// fused multiply-add pass over the three rows of S the question needs.
#include "topk.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace fastrepr {
namespace {

constexpr int64_t kBlock = 32;

// (v, i) ranks before (w, j): higher score, or the same score and a lower column.
inline bool ranks_before(float v, int64_t i, float w, int64_t j) { return v > w || (v == w && i < j); }

inline void insert(float* tv, int64_t* ti, int64_t K, float v, int64_t col) {
  int64_t p = K - 1;
  while (p > 0 && ranks_before(v, col, tv[p - 1], ti[p - 1])) {
    tv[p] = tv[p - 1];
    ti[p] = ti[p - 1];
    --p;
  }
  tv[p] = v;
  ti[p] = col;
}

// Scores of one block of columns into out[0:n], returning their maximum. Compiled for AVX-512, AVX2 and
// baseline x86-64 (chosen at load time by the CPU) where the compiler supports function multiversioning.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FASTREPR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTREPR_CLONES
#endif

FASTREPR_CLONES float score_search(const float* sa, int64_t n, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t t = 0; t < n; ++t) {
    out[t] = sa[t];
    mx = std::max(mx, sa[t]);
  }
  return mx;
}

FASTREPR_CLONES float score_add(const float* sa, const float* sb, const float* sc, float scale, int64_t n,
                                float* out) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t t = 0; t < n; ++t) {
    const float v = (sb[t] + sc[t] - sa[t]) * scale;
    out[t] = v;
    mx = std::max(mx, v);
  }
  return mx;
}

FASTREPR_CLONES float score_mul(const float* sa, const float* sb, const float* sc, int64_t n, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t t = 0; t < n; ++t) {
    const float pa = (1.0f + sa[t]) * 0.5f, pb = (1.0f + sb[t]) * 0.5f, pc = (1.0f + sc[t]) * 0.5f;
    const float v = (pb * pc) / (pa + 1e-6f);
    out[t] = v;
    mx = std::max(mx, v);
  }
  return mx;
}

template <int Mode>
void merge_row(const float* S, int64_t C, const int64_t* r, float scale, const int64_t* ex, int64_t E,
               int64_t col0, int64_t K, float* tv, int64_t* ti) {
  const float* sa = S + r[0] * C;
  const float* sb = S + r[1] * C;
  const float* sc = S + r[2] * C;
  float buf[kBlock];
  for (int64_t j0 = 0; j0 < C; j0 += kBlock) {
    const int64_t n = std::min(kBlock, C - j0);
    const float mx = Mode == 0   ? score_search(sa + j0, n, buf)
                     : Mode == 1 ? score_add(sa + j0, sb + j0, sc + j0, scale, n, buf)
                                 : score_mul(sa + j0, sb + j0, sc + j0, n, buf);
    if (!(mx >= tv[K - 1])) continue;  // nothing here can enter the list (NaN maxima are skipped too)
    for (int64_t t = 0; t < n; ++t) {
      const float v = buf[t];
      const int64_t col = col0 + j0 + t;
      if (!ranks_before(v, col, tv[K - 1], ti[K - 1])) continue;  // false for NaN
      bool skip = false;
      for (int64_t e = 0; e < E; ++e) skip |= (ex[e] == col);
      if (!skip) insert(tv, ti, K, v, col);
    }
  }
}

}  // namespace

bool topk_merge(const float* S, int64_t U, int64_t C, const int64_t* rows, const float* scale, int mode,
                const int64_t* excl, int64_t E, int64_t col0, int64_t Q, int64_t K, float* top_v,
                int64_t* top_i, int threads) {
  const int64_t used = mode == 0 ? 1 : 3;
  for (int64_t q = 0; q < Q; ++q)
    for (int64_t t = 0; t < used; ++t)
      if (rows[q * 3 + t] < 0 || rows[q * 3 + t] >= U) return false;
  const int nt = clamp_threads(threads);
  (void)nt;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt)
  for (int64_t q = 0; q < Q; ++q) {
    int64_t r[3] = {rows[q * 3], rows[q * 3 + (used > 1 ? 1 : 0)], rows[q * 3 + (used > 1 ? 2 : 0)]};
    const int64_t* ex = excl + q * E;
    float* tv = top_v + q * K;
    int64_t* ti = top_i + q * K;
    if (mode == 0) merge_row<0>(S, C, r, 1.0f, ex, E, col0, K, tv, ti);
    else if (mode == 1) merge_row<1>(S, C, r, scale[q], ex, E, col0, K, tv, ti);
    else merge_row<2>(S, C, r, 1.0f, ex, E, col0, K, tv, ti);
  }
  return true;
}

}  // namespace fastrepr
