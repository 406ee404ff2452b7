#include "queue_lse.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "common.h"

namespace fastrepr {
namespace {

// Rows per block and queue columns per tile. On the 2-core AMD EPYC this was measured on (fp32, D = 128,
// MKL sgemm), a [128, 256] score tile, the [256, D] queue tile and the block's [128, D] weighted sums stay in
// the core's L2 (~320 KB); the queue is read from memory N / 128 times.
constexpr int64_t kRows = 128;
constexpr int64_t kCols = 256;

// exp(x) for x <= 0 (every exponent here is s - max): Cody-Waite range reduction and a degree-6 polynomial,
// branch-free so that the loop vectorizes (~2 ulp; exp(-88) and below flush to 0).
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const int32_t ni = static_cast<int32_t>(x * 1.44269504088896341f - 0.5f);  // round to nearest (x <= 0)
  const float n = static_cast<float>(ni);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x <= -87.0f ? 0.0f : p * scale;
}
inline double exp_nonpositive(double x) { return std::exp(x); }

template <typename T, typename Acc>
inline Acc load(const T& x) { return static_cast<Acc>(to_float(x)); }

// S[i, j] = a_i . b_j for a [na, D], b [nb, D] (row-major), S [na, nb]: through `bt` = bᵀ [D, nb] so that the
// innermost loop runs over j and vectorizes without reordering any sum.
template <typename Acc>
void scores_loops(const Acc* a, int64_t na, const Acc* b, int64_t nb, int64_t D, Acc* bt, Acc* S) {
  for (int64_t j = 0; j < nb; ++j)
    for (int64_t d = 0; d < D; ++d) bt[d * nb + j] = b[j * D + d];
  for (int64_t i = 0; i < na; ++i) {
    Acc* s = S + i * nb;
    std::fill(s, s + nb, Acc(0));
    for (int64_t d = 0; d < D; ++d) {
      const Acc x = a[i * D + d];
      const Acc* row = bt + d * nb;
      for (int64_t j = 0; j < nb; ++j) s[j] += x * row[j];
    }
  }
}

// C[i, :] += sum_j P[i, j] b_j for P [na, nb], b [nb, D], C [na, D].
template <typename Acc>
void weighted_sum_loops(const Acc* P, int64_t na, const Acc* b, int64_t nb, int64_t D, Acc* C) {
  for (int64_t i = 0; i < na; ++i) {
    Acc* c = C + i * D;
    for (int64_t j = 0; j < nb; ++j) {
      const Acc p = P[i * nb + j];
      const Acc* row = b + j * D;
      for (int64_t d = 0; d < D; ++d) c[d] += p * row[d];
    }
  }
}

}  // namespace

template <typename T, typename Acc>
void queue_lse_forward(const Acc* qh, int64_t N, int64_t D, const T* queue, int64_t K, const Acc* rq, Acc inv_t,
                       Acc* lse, Acc* wmean, const QueueLseGemm& blas, int num_threads) {
  constexpr bool kDirect = std::is_same_v<T, Acc>;  // tiles read in place; else converted to Acc per tile
  const bool use_gemm = std::is_same_v<Acc, float> && blas.gemm != nullptr;
  const int64_t blocks = (N + kRows - 1) / kRows;
  ParallelGuard guard;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(clamp_threads(num_threads))
#endif
  {
    std::vector<Acc> S, tile, bt;
    std::vector<Acc> m(kRows), l(kRows);
    int prev = 0;
    guard.run([&] {
      S.resize(static_cast<size_t>(kRows * kCols));
      if (!kDirect) tile.resize(static_cast<size_t>(kCols * D));
      if (!use_gemm) bt.resize(static_cast<size_t>(kCols * D));
      if (use_gemm && blas.set_threads) prev = blas.set_threads(1);
    });
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
      guard.run([&] {
        const int64_t r0 = b * kRows, nr = std::min(kRows, N - r0);
        const Acc* a = qh + r0 * D;
        Acc* acc = wmean + r0 * D;
        std::fill(acc, acc + nr * D, Acc(0));
        std::fill(m.begin(), m.end(), -std::numeric_limits<Acc>::infinity());
        std::fill(l.begin(), l.end(), Acc(0));
        for (int64_t c0 = 0; c0 < K; c0 += kCols) {
          const int64_t nc = std::min(kCols, K - c0);
          const Acc* qt;
          if constexpr (kDirect) {
            qt = queue + c0 * D;
          } else {
            for (int64_t x = 0; x < nc * D; ++x) tile[x] = load<T, Acc>(queue[c0 * D + x]);
            qt = tile.data();
          }
          if constexpr (std::is_same_v<Acc, float>) {
            if (use_gemm) {
              // row-major S [nr, nc] = A Qtᵀ is the column-major nc x nr matrix Qt Aᵀ
              const char tr = 'T', nt = 'N';
              const float one = 1.0f, zero = 0.0f;
              blas.gemm(&tr, &nt, &nc, &nr, &D, &one, qt, &D, a, &D, &zero, S.data(), &nc);
            } else {
              scores_loops<Acc>(a, nr, qt, nc, D, bt.data(), S.data());
            }
          } else {
            scores_loops<Acc>(a, nr, qt, nc, D, bt.data(), S.data());
          }
          const Acc* w = rq + c0;
          for (int64_t i = 0; i < nr; ++i) {
            Acc* s = S.data() + i * nc;
            Acc mx = m[i];
            for (int64_t j = 0; j < nc; ++j) {
              s[j] *= w[j] * inv_t;
              mx = std::max(mx, s[j]);
            }
            const Acc f = exp_nonpositive(m[i] - mx);  // 0 at the first tile (m = -inf)
            Acc sum = Acc(0);
#ifdef FASTREPR_OPENMP
#pragma omp simd reduction(+ : sum)
#endif
            for (int64_t j = 0; j < nc; ++j) {
              const Acc e = exp_nonpositive(s[j] - mx);
              sum += e;
              s[j] = e * w[j];  // the weight of the unnormalized row Q_j in the mean of unit rows
            }
            l[i] = l[i] * f + sum;
            m[i] = mx;
            if (f != Acc(1))
              for (int64_t d = 0; d < D; ++d) acc[i * D + d] *= f;
          }
          if constexpr (std::is_same_v<Acc, float>) {
            if (use_gemm) {
              // column-major acc (D x nr) += Qt (D x nc, the row-major tile) P (nc x nr, the row-major S)
              const char nt = 'N';
              const float one = 1.0f;
              blas.gemm(&nt, &nt, &D, &nr, &nc, &one, qt, &D, S.data(), &nc, &one, acc, &D);
            } else {
              weighted_sum_loops<Acc>(S.data(), nr, qt, nc, D, acc);
            }
          } else {
            weighted_sum_loops<Acc>(S.data(), nr, qt, nc, D, acc);
          }
        }
        for (int64_t i = 0; i < nr; ++i) {
          lse[r0 + i] = m[i] + std::log(l[i]);
          const Acc inv = Acc(1) / l[i];
          for (int64_t d = 0; d < D; ++d) acc[i * D + d] *= inv;
        }
      });
    }
    if (use_gemm && blas.set_threads) blas.set_threads(prev);
  }
  guard.rethrow();
}

#define FASTREPR_INSTANTIATE(T, Acc)                                                                          \
  template void queue_lse_forward<T, Acc>(const Acc*, int64_t, int64_t, const T*, int64_t, const Acc*, Acc,  \
                                          Acc*, Acc*, const QueueLseGemm&, int);
FASTREPR_FOR_EACH_FLOAT(FASTREPR_INSTANTIATE)
#undef FASTREPR_INSTANTIATE

}  // namespace fastrepr
