#include "silhouette.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"

namespace fastrepr {

namespace {

// At most this many rows per product: a [128, 1024] float tile (512 KB) stays in a core's L2 (1 MB on Zen 3,
// 2 MB on recent Xeons), and the BLAS packs the key block once per 128 rows (at 64 rows that packing was 8%
// of the time on a 2-core EPYC).
constexpr int64_t kRowChunk = 128;

inline int team_size() {
#ifdef FASTREPR_OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

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

// Sum of v[0:n] in double: eight partial sums (vectorized), combined in a fixed order.
inline double sum_double(const float* v, int64_t n) {
  double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) p[k] += v[j + k];
  for (; j < n; ++j) p[j & 7] += v[j];
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

// out[r, :] = rows[r] - shift (float32), sq[r] = |out[r]|² for the sorted positions s0..s0+n.
SILHOUETTE_CLONES void pack_shifted(const SilhouetteProblem& p, int64_t s0, int64_t n, const float* shift, float* out,
                                    float* sq) {
  const int64_t D = p.D;
  for (int64_t r = 0; r < n; ++r) {
    const float* src = p.z + p.order[s0 + r] * D;
    float* dst = out + r * D;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < D; ++k) {
      dst[k] = src[k] - shift[k];
      acc += dst[k] * dst[k];
    }
    sq[r] = acc;
  }
}

// tile [nr, nc] = a [nr, D] · b [nc, D]ᵀ.
void products(const SilhouetteGemm& blas, const float* a, int64_t nr, const float* b, int64_t nc, int64_t D,
              float* tile) {
  if (blas.gemm) {  // row-major tile [nr, nc] = the column-major nc x nr matrix b aᵀ
    const char tr = 'T', nt = 'N';
    const float one = 1.0f, zero = 0.0f;
    blas.gemm(&tr, &nt, &nc, &nr, &D, &one, b, &D, a, &D, &zero, tile, &nc);
    return;
  }
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) {
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t k = 0; k < D; ++k) acc += a[i * D + k] * b[j * D + k];
      tile[i * nc + j] = acc;
    }
}

// The pairs of one row whose expansion may have cancelled, recomputed exactly in double from the unshifted
// rows xi and z[order[k0 + j]] (rare).
void exact_where_cancelled(const SilhouetteProblem& p, float* row, int64_t j0, int64_t j1, float sx,
                           const float* sqy, const float* xi, int64_t k0) {
  for (int64_t j = j0; j < j1; ++j) {
    if (!(row[j] < p.exact_below * (sx + sqy[j]))) continue;
    const float* yj = p.z + p.order[k0 + j] * p.D;
    double exact = 0.0;
    for (int64_t k = 0; k < p.D; ++k) {
      const double diff = static_cast<double>(xi[k]) - static_cast<double>(yj[k]);
      exact += diff * diff;
    }
    row[j] = static_cast<float>(exact);
  }
}

// One row of a tile: the expansion and its cancellation test, the exact recomputation where needed, then the
// square root (vectorized: this file is built with -fno-math-errno, and the argument is never < 0) and the
// row sum of each key label segment. The distances stay in row.
SILHOUETTE_CLONES void row_distances(const SilhouetteProblem& p, float* row, float sx, const float* sqy,
                                     const float* xi, int64_t k0, const int64_t* seg, int64_t S,
                                     double* sums_row, int64_t self_col) {
  for (int64_t s = 0; s < S; ++s) {
    const int64_t j0 = seg[s], j1 = seg[s + 1];
    int suspect = 0;
#pragma omp simd reduction(| : suspect)
    for (int64_t j = j0; j < j1; ++j) {
      const float d2 = sx + sqy[j] - 2.0f * row[j];
      suspect |= d2 < p.exact_below * (sx + sqy[j]);
      row[j] = d2;
    }
    if (suspect) exact_where_cancelled(p, row, j0, j1, sx, sqy, xi, k0);
    if (self_col >= j0 && self_col < j1) row[self_col] = 0.0f;
    for (int64_t j = j0; j < j1; ++j) row[j] = std::sqrt(row[j] > 0.0f ? row[j] : 0.0f);
    sums_row[p.labels[k0 + seg[s]]] += sum_double(row + j0, j1 - j0);
  }
}

// Whether any pair of one row segment may have cancelled in the expansion (row_distances' test).
SILHOUETTE_CLONES bool any_cancelled(const float* row, float sx, const float* sqy, int64_t n, float exact_below) {
  int suspect = 0;
#pragma omp simd reduction(| : suspect)
  for (int64_t j = 0; j < n; ++j) {
    const float d2 = sx + sqy[j] - 2.0f * row[j];
    suspect |= d2 < exact_below * (sx + sqy[j]);
  }
  return suspect != 0;
}

// The distances of one row segment none of whose pairs cancelled, in one pass: their sum (returned, double)
// and col[j] += d_j (double). The tile is only read. AVX2 where the CPU has it (GCC does not vectorize the
// float sqrt and double sums of this loop by itself), else the same arithmetic one pair at a time.
double fused_segment_scalar(const float* row, float sx, const float* sqy, int64_t n, double* col) {
  double acc = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const float d2 = sx + sqy[j] - 2.0f * row[j];
    const float d = std::sqrt(d2 > 0.0f ? d2 : 0.0f);
    acc += d;
    col[j] += d;
  }
  return acc;
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2,fma"))) double fused_segment_avx2(const float* row, float sx, const float* sqy,
                                                              int64_t n, double* col) {
  const __m256 vsx = _mm256_set1_ps(sx), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 d2 = _mm256_sub_ps(_mm256_add_ps(vsx, _mm256_loadu_ps(sqy + j)),
                                    _mm256_mul_ps(two, _mm256_loadu_ps(row + j)));
    const __m256 d = _mm256_sqrt_ps(_mm256_max_ps(d2, zero));  // max(NaN, 0) = 0, as d2 > 0 ? d2 : 0
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
    a0 = _mm256_add_pd(a0, lo);
    a1 = _mm256_add_pd(a1, hi);
    _mm256_storeu_pd(col + j, _mm256_add_pd(_mm256_loadu_pd(col + j), lo));
    _mm256_storeu_pd(col + j + 4, _mm256_add_pd(_mm256_loadu_pd(col + j + 4), hi));
  }
  double part[4];
  _mm256_storeu_pd(part, _mm256_add_pd(a0, a1));
  return ((part[0] + part[1]) + (part[2] + part[3])) + fused_segment_scalar(row + j, sx, sqy + j, n - j, col + j);
}

inline double fused_segment(const float* row, float sx, const float* sqy, int64_t n, double* col) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2 ? fused_segment_avx2(row, sx, sqy, n, col) : fused_segment_scalar(row, sx, sqy, n, col);
}
#else
inline double fused_segment(const float* row, float sx, const float* sqy, int64_t n, double* col) {
  return fused_segment_scalar(row, sx, sqy, n, col);
}
#endif

// col[j] += row[j] (double), the column sums of a labelled group's rows.
SILHOUETTE_CLONES void add_into(double* col, const float* row, int64_t n) {
  for (int64_t j = 0; j < n; ++j) col[j] += row[j];
}

const char* check(const SilhouetteProblem& p) {
  if (p.N < 1 || p.D < 1 || p.C < 1 || p.block < 1 || p.G < 1) return "N, D, C, block and G must be >= 1";
  std::vector<char> seen(static_cast<size_t>(p.N), 0);
  for (int64_t i = 0; i < p.N; ++i) {
    const int64_t o = p.order[i];
    if (o < 0 || o >= p.N || seen[o]) return "order must be a permutation of 0..N-1";
    seen[o] = 1;
    if (p.labels[i] < 0 || p.labels[i] >= p.C) return "labels must lie in [0, C)";
    if (i > 0 && p.labels[i] < p.labels[i - 1]) return "labels must be sorted (the order's labels)";
  }
  int64_t at = 0;
  for (int64_t g = 0; g < p.G; ++g) {
    const int64_t s = p.groups[3 * g], e = p.groups[3 * g + 1], label = p.groups[3 * g + 2];
    if (s != at || e <= s || e > p.N || (e - 1) / p.block != s / p.block)
      return "groups must cover 0..N in order, each inside one block";
    if (label < -1 || label >= p.C) return "a group's label must be -1 or in [0, C)";
    if (label >= 0)
      for (int64_t i = s; i < e; ++i)
        if (p.labels[i] != label) return "a labelled group's rows must all have its label";
    at = e;
  }
  return at == p.N ? "" : "groups must cover 0..N in order, each inside one block";
}

}  // namespace

const char* silhouette_sums(const SilhouetteProblem& p, const SilhouetteGemm& blas, double* sums, int num_threads) {
  if (const char* why = check(p); *why) return why;
  const int64_t N = p.N, D = p.D, C = p.C, B = p.block;
  const int64_t blocks = (N + B - 1) / B;
  // the label segments of every key block: starts relative to the block, plus its end
  std::vector<std::vector<int64_t>> segs(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t k0 = b * B, k1 = std::min(N, k0 + B);
    segs[b].push_back(0);
    for (int64_t j = k0 + 1; j < k1; ++j)
      if (p.labels[j] != p.labels[j - 1]) segs[b].push_back(j - k0);
    segs[b].push_back(k1 - k0);
  }
  const int threads = clamp_threads(num_threads);
  // the shifted rows of the current group (xs) and of the current key block (ys), shared by the team
  std::vector<float> shift(static_cast<size_t>(D)), xs(static_cast<size_t>(std::min(N, B) * D)),
      sqx(static_cast<size_t>(std::min(N, B))), ys(static_cast<size_t>(std::min(N, B) * D)),
      sqy(static_cast<size_t>(std::min(N, B)));
  // per-thread column sums of one key block: [B] for a labelled group, [B, C] for a group of many labels
  const bool any_unlabelled = [&] {
    for (int64_t g = 0; g < p.G; ++g)
      if (p.groups[3 * g + 2] < 0) return true;
    return false;
  }();
  const int64_t col_len = std::min(N, B) * (any_unlabelled ? C : 1);
  std::vector<std::vector<double>> cols(static_cast<size_t>(threads), std::vector<double>(col_len));
  ParallelGuard guard;
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id(), team = team_size();
    std::vector<float> tile;
    std::vector<int64_t> seg, head_seg;  // a tile row's key label segments (see segments_from)
    int prev = 0;
    guard.run([&] {
      tile.resize(static_cast<size_t>(kRowChunk * std::min(N, B)));
      if (blas.gemm && blas.set_threads) prev = blas.set_threads(1);
    });
    for (int64_t g = 0; g < p.G; ++g) {
      const int64_t s0 = p.groups[3 * g], s1 = p.groups[3 * g + 1], label = p.groups[3 * g + 2];
      const int64_t b = s0 / B;
#pragma omp single
      guard.run([&] {  // the group's mean, in double, rounded to float32 (any shift is an exact translation)
        std::vector<double> m(static_cast<size_t>(D), 0.0);
        for (int64_t i = s0; i < s1; ++i) {
          const float* x = p.z + p.order[i] * D;
          for (int64_t k = 0; k < D; ++k) m[k] += x[k];
        }
        for (int64_t k = 0; k < D; ++k) shift[k] = static_cast<float>(m[k] / static_cast<double>(s1 - s0));
      });  // (implicit barrier)
#pragma omp for schedule(static)
      for (int64_t i = s0; i < s1; i += 16)
        guard.run([&] { pack_shifted(p, i, std::min<int64_t>(16, s1 - i), shift.data(), xs.data() + (i - s0) * D,
                                     sqx.data() + (i - s0)); });
      // (implicit barrier: the group's shifted rows are ready)
      for (int64_t kb = b; kb < blocks; ++kb) {
        // Keys: the whole block off the diagonal; on it, only from the group's first row on (the keys before it
        // belong to earlier groups, which added these pairs as their column sums).
        const bool diag = kb == b;
        const int64_t k0 = kb * B, k1 = std::min(N, k0 + B), kstart = diag ? s0 : k0, nc = k1 - kstart;
#pragma omp for schedule(static)
        for (int64_t j = 0; j < nc; j += 16)
          guard.run([&] { pack_shifted(p, kstart + j, std::min<int64_t>(16, nc - j), shift.data(), ys.data() + j * D,
                                       sqy.data() + j); });
        // (implicit barrier: the shifted keys are ready)
        double* col = cols[t].data();
        std::fill(col, col + nc * (label >= 0 ? 1 : C), 0.0);
        // A labelled group's diagonal unit is triangular: each row chunk takes the keys from its own first row
        // on (its own square as row sums, the keys after it as row and column sums), half the square's pairs.
        const bool tri = diag && label >= 0;
        // a multiple of the team's size of near-equal chunks of at most kRowChunk rows (multiples of 8), dealt
        // round-robin: a group of 100 rows is two chunks of 56 and 44 on two threads, not one of 100 and none
        const int64_t per_thread = (s1 - s0 + team * kRowChunk - 1) / (team * kRowChunk);
        const int64_t even = (s1 - s0 + team * per_thread - 1) / (team * per_thread);
        const int64_t rows_per = std::min(kRowChunk, (even + 7) / 8 * 8);
        const int64_t chunks = (s1 - s0 + rows_per - 1) / rows_per;
#pragma omp for schedule(static, 1)
        for (int64_t c = 0; c < chunks; ++c) {
          guard.run([&] {
            const int64_t r0 = s0 + c * rows_per, nr = std::min(rows_per, s1 - r0);
            const int64_t jstart = tri ? r0 - kstart : 0, width = nc - jstart, kfirst = kstart + jstart;
            const float* sqk = sqy.data() + jstart;
            double* colk = col + jstart * (label >= 0 ? 1 : C);
            products(blas, xs.data() + (r0 - s0) * D, nr, ys.data() + jstart * D, width, D, tile.data());
            // the tile's columns from `from` on: key label segments (relative to the tile) from segs[kb]
            const auto segments_from = [&](int64_t from) {
              seg.assign(1, from);
              for (const int64_t x : segs[kb])
                if (x + k0 > kfirst + from && x + k0 < k1) seg.push_back(x + k0 - kfirst);
              seg.push_back(width);
            };
            // columns [0, own_end): the diagonal's square, row sums only (d(i, i) = 0); the columns after it: row
            // and column sums
            const int64_t own_end = tri ? nr : (diag ? s1 - kfirst : 0);
            if (own_end > 0) {
              segments_from(0);
              int64_t q = 0;
              while (seg[q + 1] < own_end) ++q;  // the segments wholly or partly before own_end
              head_seg.assign(seg.begin(), seg.begin() + q + 1);
              head_seg.push_back(own_end);
            }
            if (own_end < width) segments_from(own_end);
            const int64_t S = static_cast<int64_t>(seg.size()) - 1;
            for (int64_t r = 0; r < nr; ++r) {
              float* row = tile.data() + r * width;
              const int64_t i = r0 + r;
              const float sx = sqx[i - s0];
              const float* xi = p.z + p.order[i] * D;
              double* sums_row = sums + i * C;
              if (own_end > 0)
                row_distances(p, row, sx, sqk, xi, kfirst, head_seg.data(),
                              static_cast<int64_t>(head_seg.size()) - 1, sums_row, i - kfirst);
              if (own_end >= width) continue;
              if (label >= 0) {  // one label: each segment fused unless it may have cancelled
                for (int64_t q = 0; q < S; ++q) {
                  const int64_t j0 = seg[q], j1 = seg[q + 1];
                  if (any_cancelled(row + j0, sx, sqk + j0, j1 - j0, p.exact_below)) {
                    row_distances(p, row, sx, sqk, xi, kfirst, seg.data() + q, 1, sums_row, -1);
                    add_into(colk + j0, row + j0, j1 - j0);
                  } else {
                    sums_row[p.labels[kfirst + j0]] += fused_segment(row + j0, sx, sqk + j0, j1 - j0, colk + j0);
                  }
                }
              } else {
                row_distances(p, row, sx, sqk, xi, kfirst, seg.data(), S, sums_row, -1);
                const int64_t li = p.labels[i];
                for (int64_t j = own_end; j < width; ++j) colk[j * C + li] += row[j];
              }
            }
          });
        }
        // (implicit barrier) the column sums of the key rows, reduced in thread order
#pragma omp for schedule(static)
        for (int64_t j = 0; j < nc; ++j) {
          double* out = sums + (kstart + j) * C;
          for (int u = 0; u < threads; ++u) {
            const double* part = cols[u].data();
            if (label >= 0) {
              out[label] += part[j];
            } else {
              for (int64_t c = 0; c < C; ++c) out[c] += part[j * C + c];
            }
          }
        }
      }
    }
    if (blas.gemm && blas.set_threads) blas.set_threads(prev);
  }
  guard.rethrow();
  return "";
}

}  // namespace fastrepr
