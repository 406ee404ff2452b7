// Running top-k merge (see topk.h). Each row is independent: OpenMP over rows, dynamic schedule because
// rows differ in how often a candidate beats the current k-th score.
//
// Per row the tile is scored in blocks of 32 columns into a small buffer (a loop the compiler vectorizes),
// and only blocks whose maximum reaches the row's current threshold are scanned element by element. After
// the first few blocks the threshold is high and almost every block is skipped, so the cost is about one
// fused multiply-add pass over the three rows of S the question needs.
#include "topk.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

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

// ---- BLAS registry (see topk.h) ----

namespace {

struct Blas {
  Sgemm64 gemm;
  GemmBf16 gemm_bf16;
  SetThreadsLocal set_threads;
};
std::mutex blas_mutex;
std::vector<Blas> blas_table;  // handle h is blas_table[h - 1]

// C [m, n] column-major = A^T B for A [k, m], B [k, n] column-major (the product topk_scan asks for), with
// leading dimensions larger than the sizes, against a float64 loop (over the bf16-rounded inputs for bf16).
bool blas_self_test(Sgemm64 gemm, GemmBf16 gemm_bf16) {
  const int64_t m = 37, n = 5, k = 19, lda = 23, ldb = 21, ldc = 41;
  std::vector<float> A(lda * m), B(ldb * n), C(ldc * n, -7.0f);
  std::vector<uint16_t> A16(A.size()), B16(B.size());
  uint32_t s = 12345;
  auto next = [&s] { s = s * 1664525u + 1013904223u; return static_cast<float>(s >> 8) / 16777216.0f - 0.5f; };
  for (auto& a : A) a = next();
  for (auto& b : B) b = next();
  if (gemm_bf16) {  // the reference multiplies the rounded inputs
    for (size_t x = 0; x < A.size(); ++x) A[x] = to_float(bf16{A16[x] = float_to_bf16(A[x])});
    for (size_t x = 0; x < B.size(); ++x) B[x] = to_float(bf16{B16[x] = float_to_bf16(B[x])});
  }
  const char t = 'T', nn = 'N';
  const float one = 1.0f, zero = 0.0f;
  if (gemm_bf16)
    gemm_bf16(&t, &nn, &m, &n, &k, &one, A16.data(), &lda, B16.data(), &ldb, &zero, C.data(), &ldc);
  else
    gemm(&t, &nn, &m, &n, &k, &one, A.data(), &lda, B.data(), &ldb, &zero, C.data(), &ldc);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < ldc; ++i) {
      if (i >= m) {
        if (C[j * ldc + i] != -7.0f) return false;  // wrote outside the product
        continue;
      }
      double want = 0.0;
      for (int64_t d = 0; d < k; ++d) want += static_cast<double>(A[i * lda + d]) * B[j * ldb + d];
      if (!(std::fabs(C[j * ldc + i] - want) <= 1e-5)) return false;
    }
  return true;
}

}  // namespace

int topk_blas_register(const std::string& library, bool bf16, std::string& why) {
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!lib) {
    why = "not loaded in this process: " + library;
    return 0;
  }
  Blas b{nullptr, nullptr, nullptr};
  if (bf16) {
    b.gemm_bf16 = reinterpret_cast<GemmBf16>(dlsym(lib, "gemm_bf16bf16f32_64_"));
  } else {
    for (const char* name : {"sgemm_64_", "scipy_sgemm_64_", "sgemm_64"})
      if (!b.gemm) b.gemm = reinterpret_cast<Sgemm64>(dlsym(lib, name));
  }
  // C interfaces, int by value (MKL's lower-case mkl_set_num_threads_local is the Fortran one, int*)
  for (const char* name : {"MKL_Set_Num_Threads_Local", "openblas_set_num_threads_local"})
    if (!b.set_threads) b.set_threads = reinterpret_cast<SetThreadsLocal>(dlsym(lib, name));
  if (!b.gemm && !b.gemm_bf16) {
    why = std::string(bf16 ? "no gemm_bf16bf16f32_64_" : "no ILP64 sgemm (sgemm_64_)") + " in " + library;
    return 0;
  }
  if (!blas_self_test(b.gemm, b.gemm_bf16)) {
    why = "the product of " + library + " failed the self-test";
    return 0;
  }
  std::lock_guard<std::mutex> lock(blas_mutex);
  blas_table.push_back(b);
  return static_cast<int>(blas_table.size());
}

bool topk_blas_lookup(int handle, ScanPlan& plan) {
  std::lock_guard<std::mutex> lock(blas_mutex);
  if (handle < 1 || handle > static_cast<int>(blas_table.size())) return false;
  plan.gemm = blas_table[handle - 1].gemm;
  plan.gemm_bf16 = blas_table[handle - 1].gemm_bf16;
  plan.set_threads = blas_table[handle - 1].set_threads;
  return true;
}

// ---- refinement (see topk.h) ----
//
// Exact scores: products of two float32 values are exact in float64, and D of them sum with a relative error
// near D·2^-53, far below any float32 difference; rows tied in float64 keep the lower row first, as the
// float64 reference does. The certificate: a row left out of the candidates scored at most `worst` in the
// approximate pass, so its exact score is at most worst + bound; if that is below the k-th exact score, it
// cannot be among the k best, nor tie with the k-th (ties would need equality).

namespace {

// sum_d x[d] * v[d] in float64, 8 partial sums (vectorizable without reassociating one running sum).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define REFINE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REFINE_CLONES
#endif

REFINE_CLONES double dot64(const double* x, const float* v, int64_t D) {
  double acc[8] = {};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int t = 0; t < 8; ++t) acc[t] += x[d + t] * static_cast<double>(v[d + t]);
  double s = 0.0;
  for (; d < D; ++d) s += x[d] * static_cast<double>(v[d]);
  return s + ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

REFINE_CLONES double dist64(const double* x, const float* v, int64_t D) {
  double acc[8] = {};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int t = 0; t < 8; ++t) {
      const double e = x[d + t] - static_cast<double>(v[d + t]);
      acc[t] += e * e;
    }
  double s = 0.0;
  for (; d < D; ++d) {
    const double e = x[d] - static_cast<double>(v[d]);
    s += e * e;
  }
  return s + ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

constexpr int64_t kAhead = 8;

inline void prefetch_row(const RefineProblem& p, int64_t r) {
  if (r < 0 || r >= p.R) return;
  const char* row = reinterpret_cast<const char*>(p.v + r * p.ldv);
  // into L2 (prefetcht2): with L1 as the target, 8 rows x 8 lines in flight ran 2x slower on the Xeon
  for (int64_t b = 0; b < p.D * static_cast<int64_t>(sizeof(float)); b += 64) __builtin_prefetch(row + b, 0, 1);
}

bool excluded(const RefineProblem& p, int64_t q, int64_t r) {
  bool skip = r < 0;
  const int64_t* ex = p.excl + q * p.E;
  for (int64_t e = 0; e < p.E; ++e) skip |= ex[e] == r;
  return skip;
}

// The k-th non-excluded approximate score of query q less 2·bound (plus, for distances): candidates below it
// cannot reach the exact top k. The candidates scored are a prefix of q's list: those at or above it.
double first_cut(const RefineProblem& p, int64_t q) {
  const int64_t* cq = p.cand + q * p.Kc;
  const double* aq = p.approx + q * p.Kc;
  for (int64_t j = 0, seen = 0; j < p.Kc; ++j)
    if (!excluded(p, q, cq[j]) && ++seen == p.k) return p.l2 ? aq[j] + 2.0 * p.bound[q] : aq[j] - 2.0 * p.bound[q];
  return p.l2 ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

inline double exact_key(const RefineProblem& p, const double* x, int64_t r) {
  const float* row = p.v + r * p.ldv;
  return p.l2 ? -dist64(x, row, p.D) : dot64(x, row, p.D);
}

// Row order: when the candidates to score are many for the rows (at least R / 2 of them), their rows are
// read in increasing order instead of query by query. Each thread owns a range of rows, sorts the candidates
// that fall in it by row (a counting sort) and scores each row against all the queries that hold it, so the
// table streams through memory once instead of one scattered row fetch per candidate. On the Zen 4 of issue
// 11 (2 threads, 32 MB L3), 1000 queries x 208 candidates over 100,000 rows of D = 128: 18.7 -> 10.5 ms; 5000
// queries over 10^6 rows: 171 -> 84 ms. Below R / 2 (1000 queries x 38 over 10^5 rows: 1.8 vs 3.2 ms) the
// scattered fetches cost less than the stream and the queries' own scattered reads. The keys are the same
// dot64/dist64 values, bit for bit (tested).
// key [Q, Kc]: the exact ranking key of every candidate in its query's scored prefix, the rest untouched.
void scores_in_row_order(const RefineProblem& p, const std::vector<int64_t>& upto, int nt, double* key) {
  ParallelGuard guard;
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t lo = p.R * t / n, hi = p.R * (t + 1) / n;
    guard.run([&] {
      // f(candidate index q·Kc + j, row - lo) for every candidate to score whose row is in this range
      auto each = [&](auto&& f) {
        for (int64_t q = 0; q < p.Q; ++q)
          for (int64_t j = 0; j < upto[q]; ++j) {
            const int64_t r = p.cand[q * p.Kc + j];
            if (r >= lo && r < hi && !excluded(p, q, r)) f(static_cast<uint32_t>(q * p.Kc + j), r - lo);
          }
      };
      std::vector<uint32_t> start(static_cast<size_t>(hi - lo + 1), 0);
      each([&](uint32_t, int64_t r) { ++start[r + 1]; });
      for (int64_t r = 0; r < hi - lo; ++r) start[r + 1] += start[r];
      std::vector<uint32_t> slot(start[hi - lo]);  // candidate indices, by row
      std::vector<uint32_t> fill(start.begin(), start.end() - 1);
      each([&](uint32_t c, int64_t r) { slot[fill[r]++] = c; });
      for (int64_t r = lo; r < hi; ++r)
        for (uint32_t s = start[r - lo]; s < start[r - lo + 1]; ++s)
          key[slot[s]] = exact_key(p, p.x + (slot[s] / p.Kc) * p.D, r);
    });
  }
  guard.rethrow();
}

}  // namespace

bool topk_refine(const RefineProblem& p, float* out_v, int64_t* out_i, uint8_t* ok, int threads) {
  for (int64_t x = 0; x < p.Q * p.Kc; ++x)
    if (p.cand[x] < -1 || p.cand[x] >= p.R) return false;
  const bool exhaustive = p.Kc >= p.R;
  // one thread per chunk of 16 queries at most: waking a team for a few queries costs more than it saves
  const int nt = static_cast<int>(std::min<int64_t>(clamp_threads(threads), (p.Q + 15) / 16));
  (void)nt;
  // the scored prefix of each query's candidates (first_cut), and their keys in row order when they are many
  std::vector<int64_t> upto(static_cast<size_t>(p.Q));
  std::vector<double> cuts(upto.size());
  int64_t total = 0;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : total)
  for (int64_t q = 0; q < p.Q; ++q) {
    const double cut = cuts[q] = first_cut(p, q);
    const double* aq = p.approx + q * p.Kc;
    int64_t j = 0;
    while (j < p.Kc && !(p.l2 ? aq[j] > cut : aq[j] < cut)) ++j;
    upto[q] = j;
    total += j;
  }
  std::vector<double> pre;
  if (2 * total >= p.R && p.Q * p.Kc < (int64_t{1} << 32)) {
    pre.resize(static_cast<size_t>(p.Q * p.Kc));
    scores_in_row_order(p, upto, clamp_threads(threads), pre.data());
  }
#pragma omp parallel num_threads(nt)
  {
    std::vector<std::pair<double, int64_t>> found;  // (ranking key: higher is better, row)
    found.reserve(static_cast<size_t>(p.Kc));
    int64_t first = -1;
#pragma omp for schedule(dynamic, 16)
    for (int64_t q = 0; q < p.Q; ++q) {
      if (first < 0 || q % 16 == 0) first = q;  // the first query of each chunk of the schedule
      const double* x = p.x + q * p.D;
      found.clear();
      const int64_t* cq = p.cand + q * p.Kc;
      const double* aq = p.approx + q * p.Kc;
      double cut = cuts[q];
      if (q == first && pre.empty()) // later queries had their first rows fetched during the previous one
        for (int64_t j = 0; j < std::min<int64_t>(kAhead, p.Kc); ++j) prefetch_row(p, cq[j]);
      const double sc0 = p.l2 ? -1.0 : (p.scale ? p.scale[q] : 1.0);  // ranking key -> approximate-score units
      for (int64_t j = 0; j < p.Kc; ++j) {
        // candidate rows are scattered over the table: fetch kAhead ahead, into the next query's rows at the
        // end (without it the loop waits on memory: 2.4x slower on the Xeon this was tuned on)
        const int64_t ahead = q * p.Kc + j + kAhead;
        if (pre.empty() && ahead < p.Q * p.Kc) prefetch_row(p, p.cand[ahead]);
        const int64_t r = cq[j];
        if (p.l2 ? aq[j] > cut : aq[j] < cut) break;  // sorted: every later one is below the cut too
        if (excluded(p, q, r)) continue;
        found.emplace_back(pre.empty() ? exact_key(p, x, r) : pre[q * p.Kc + j], r);
        if (static_cast<int64_t>(found.size()) == p.k) {
          // k exact scores known: the k-th best exact score is at least their lowest, so a candidate whose
          // approximate score is more than one bound below that cannot reach the top k (the cut above
          // allowed for two bounds, one each side of the k-th approximate score)
          double low = found[0].first;
          for (const auto& f : found) low = std::min(low, f.first);
          const double tight = low * sc0 + (p.l2 ? p.bound[q] : -p.bound[q]);
          cut = p.l2 ? std::min(cut, tight) : std::max(cut, tight);
        }
      }
      const int64_t n = static_cast<int64_t>(found.size()), m = std::min(n, p.k);
      std::partial_sort(found.begin(), found.begin() + m, found.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      const float pad = p.l2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
      const double sc = p.l2 ? -1.0 : (p.scale ? p.scale[q] : 1.0);  // key -> reported score
      for (int64_t j = 0; j < p.k; ++j) {
        out_v[q * p.k + j] = j < m ? static_cast<float>(found[j].first * sc) : pad;
        out_i[q * p.k + j] = j < m ? found[j].second : -1;
      }
      bool certain = exhaustive;
      if (!certain && m == p.k && m > 0) {
        const double kth = p.l2 ? found[m - 1].first : found[m - 1].first * sc;  // l2: minus the k-th distance
        const double worst = aq[p.Kc - 1];
        const double outside = p.l2 ? -(worst - p.bound[q]) : worst + p.bound[q];
        certain = outside < kth;
      }
      ok[q] = certain ? 1 : 0;
    }
  }
  return true;
}

}  // namespace fastrepr
