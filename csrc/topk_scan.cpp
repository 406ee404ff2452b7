// Candidate scan for exact search (see topk.h): the K best rows of v for each query by float32 score.
//
// Work items are (G consecutive tiles of block_q queries, one of P ranges of rows); OpenMP threads take
// items dynamically. For each block_v rows of its range, an item forms each [block_q, block_v] score tile in
// a thread-private buffer that stays in the core's L2, and folds every query's row of the tile into that
// query's running list while the tile is still hot (reading a [Q, C] tile back from memory after one
// multi-threaded GEMM cost 50% on top of the GEMM itself on the Xeon this was tuned on; this way, 8-10%).
// The tile comes from
//   * a single-threaded sgemm call of the BLAS the plan names (MKL from torch, OpenBLAS from numpy), set to one
//     thread for the calling thread only, so T threads run T independent products; or
//   * the bfloat16 product of MKL (gemm_bf16bf16f32: AMX or AVX512-BF16 where the CPU has them) from bf16
//     copies of the queries, made here once per item, and of the rows, read from the caller's table
//     (bf16_pack_table, which also stores each row's error); a filter: the refinement's bound comes from the
//     copies' measured errors, as the int8 filter's does (FilterStats);
//   * the built-in kernel: 4 queries x 4 rows of dot products held in vector registers (16 accumulators of
//     16 floats on AVX-512), for CPUs or builds without a usable BLAS.
//
// Running list of one query: a buffer of L = 2K entries and a threshold t (the K-th best entry at the last
// compaction; (-inf, +max) at first, or the query's seed on the int8 filter at K >= 128: notes at
// int8_seeds). A score enters only if it beats t; when the buffer fills, one nth_element keeps the best K and
// t moves up to the K-th. Rows of one range arrive in increasing order,
// so an equal score never ranks before t (t's row is lower): ties keep the lower row, as everywhere. Every
// row left out scores at most t <= the final K-th score. On x86, 64 (AVX-512) or 32 (AVX2) scores at a time
// are compared with t as a mask and only the lanes that beat it are visited. Cost: 2·Q·R·D flops for the
// tiles, one pass over the tiles, and O(K) per compaction (amortized O(1) per accepted score).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "topk.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FASTREPR_TOPK_X86 1
#endif
#define TOPK_INLINE inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values never cross a non-inlined call

namespace fastrepr {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kMaxId = std::numeric_limits<int64_t>::max();

// ---- built-in tile kernel: out[i, j] = q_i . v_j ----

typedef float v4 __attribute__((vector_size(16)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

template <typename V>
TOPK_INLINE V vload(const float* p) {
  V x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// sums[i][j] += q_i . v_j over columns [d, D) in steps of V's lanes; returns the first column left.
template <typename V, int NQ, int NV>
TOPK_INLINE int64_t dots_stage(const float* q, int64_t ldq, const float* v, int64_t ldv, int64_t d, int64_t D,
                               float sums[NQ][NV]) {
  constexpr int L = sizeof(V) / sizeof(float);
  if (d + L > D) return d;
  V acc[NQ][NV];
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (; d + L <= D; d += L) {
    V vv[NV];
    for (int j = 0; j < NV; ++j) vv[j] = vload<V>(v + j * ldv + d);
    for (int i = 0; i < NQ; ++i) {
      const V qq = vload<V>(q + i * ldq + d);
      for (int j = 0; j < NV; ++j) acc[i][j] += qq * vv[j];
    }
  }
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < NV; ++j)
      for (int l = 0; l < L; ++l) sums[i][j] += acc[i][j][l];
  return d;
}

// One NQ x NV block of dot products: full vectors, then narrower ones, then scalars (D = 300 = 18·16 + 8 + 4).
template <typename V, int NQ, int NV>
TOPK_INLINE void dots_block(const float* q, int64_t ldq, const float* v, int64_t ldv, int64_t D, float* out,
                            int64_t ldo) {
  float sums[NQ][NV] = {};
  int64_t d = dots_stage<V, NQ, NV>(q, ldq, v, ldv, 0, D, sums);
  if (sizeof(V) > sizeof(v8)) d = dots_stage<v8, NQ, NV>(q, ldq, v, ldv, d, D, sums);
  if (sizeof(V) > sizeof(v4)) d = dots_stage<v4, NQ, NV>(q, ldq, v, ldv, d, D, sums);
  for (; d < D; ++d)
    for (int i = 0; i < NQ; ++i)
      for (int j = 0; j < NV; ++j) sums[i][j] += q[i * ldq + d] * v[j * ldv + d];
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < NV; ++j) out[i * ldo + j] = sums[i][j];
}

// out [nq, nv] (row stride ldo) = queries [nq, D] . rows [nv, D]^T. Each group of NV rows is read once
// from L1 for all the queries of the tile.
template <typename V, int NQ, int NV>
TOPK_INLINE void dots_tile(const float* q, int64_t ldq, int64_t nq, const float* v, int64_t ldv, int64_t nv,
                           int64_t D, float* out, int64_t ldo) {
  int64_t j = 0;
  for (; j + NV <= nv; j += NV) {
    int64_t i = 0;
    for (; i + NQ <= nq; i += NQ) dots_block<V, NQ, NV>(q + i * ldq, ldq, v + j * ldv, ldv, D, out + i * ldo + j, ldo);
    for (; i < nq; ++i) dots_block<V, 1, NV>(q + i * ldq, ldq, v + j * ldv, ldv, D, out + i * ldo + j, ldo);
  }
  for (; j < nv; ++j) {
    int64_t i = 0;
    for (; i + NQ <= nq; i += NQ) dots_block<V, NQ, 1>(q + i * ldq, ldq, v + j * ldv, ldv, D, out + i * ldo + j, ldo);
    for (; i < nq; ++i) dots_block<V, 1, 1>(q + i * ldq, ldq, v + j * ldv, ldv, D, out + i * ldo + j, ldo);
  }
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);

void tile_generic(const float* q, int64_t ldq, int64_t nq, const float* v, int64_t ldv, int64_t nv, int64_t D,
                  float* out, int64_t ldo) {
  dots_tile<v4, 4, 2>(q, ldq, nq, v, ldv, nv, D, out, ldo);
}
#ifdef FASTREPR_TOPK_X86
__attribute__((target("avx2,fma"))) void tile_avx2(const float* q, int64_t ldq, int64_t nq, const float* v,
                                                   int64_t ldv, int64_t nv, int64_t D, float* out, int64_t ldo) {
  dots_tile<v8, 4, 2>(q, ldq, nq, v, ldv, nv, D, out, ldo);  // 8 accumulators of the 16 ymm registers
}
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) void tile_avx512(
    const float* q, int64_t ldq, int64_t nq, const float* v, int64_t ldv, int64_t nv, int64_t D, float* out,
    int64_t ldo) {
  dots_tile<v16, 4, 4>(q, ldq, nq, v, ldv, nv, D, out, ldo);  // 16 accumulators of the 32 zmm registers
}
#endif

std::string pick_isa() {
  std::string want;
  if (const char* env = std::getenv("FASTREPR_TOPK_ISA")) want = env;
#ifdef FASTREPR_TOPK_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (want == "generic") return "generic";
  if (want == "avx2" && avx2) return "avx2";
  if (avx512) return "avx512";
  if (avx2) return "avx2";
#endif
  return "generic";
}

const std::string& isa() {
  static const std::string name = pick_isa();
  return name;
}

TileFn tile_fn() {
#ifdef FASTREPR_TOPK_X86
  if (isa() == "avx512") return tile_avx512;
  if (isa() == "avx2") return tile_avx2;
#endif
  return tile_generic;
}

// ---- running lists ----

struct Entry {
  float v;
  int64_t i;
};

inline bool better(const Entry& a, const Entry& b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

struct List {
  Entry* e;  // [L]
  uint32_t* key;  // [L] compact's scratch (order keys of the scores)
  int64_t n;
  Entry t;  // threshold
};

// Order-preserving integer keys of floats (a > b as floats iff key(a) > key(b); -0 and +0 share a key, as
// they compare equal). NaN never enters a list.
inline uint32_t order_key(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  b = b == 0x80000000u ? 0u : b;
  return b ^ (static_cast<uint32_t>(static_cast<int32_t>(b) >> 31) | 0x80000000u);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TOPK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TOPK_CLONES
#endif

// The key of the K-th largest of keys [n] (1 <= K <= n), bit by bit from the top: the largest c with at
// least K keys >= c. Each step is one vectorized count; it stops early once exactly K keys lie at or above
// the prefix (the K-th is then their minimum).
TOPK_CLONES uint32_t kth_key(const uint32_t* key, int64_t n, int64_t K) {
  uint32_t tau = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t c = tau | (1u << bit);
    int64_t above = 0;
#pragma omp simd reduction(+ : above)
    for (int64_t j = 0; j < n; ++j) above += key[j] >= c;
    if (above < K) continue;
    tau = c;
    if (above == K) {
      uint32_t lo = 0xffffffffu;
#pragma omp simd reduction(min : lo)
      for (int64_t j = 0; j < n; ++j) lo = key[j] >= c && key[j] < lo ? key[j] : lo;
      return lo;
    }
  }
  return tau;
}

// Keep the best K of a full list (score descending, equal scores: lower row first) and move the threshold
// to the K-th. The K-th score comes from kth_key over the scores alone (4-byte keys, no comparator), then one
// branch-free pass moves the entries above it to the front; of those equal to it (usually just the K-th
// itself), the lowest rows fill the rest. std::nth_element on the entries, which this replaces, was a fifth
// of a k = 100 search (its comparisons mispredict about half the time); it remains for lists with many
// exact ties.
void compact(List& l, int64_t K) {
  const int64_t n = l.n;
  uint32_t* key = l.key;
  for (int64_t j = 0; j < n; ++j) key[j] = order_key(l.e[j].v);
  const uint32_t tau = kth_key(key, n, K);
  constexpr int kTies = 32;
  Entry tie[kTies];
  int64_t nt = 0, above = 0;
  for (int64_t j = 0; j < n; ++j) {
    above += key[j] > tau;
    if (key[j] == tau) {
      if (nt == kTies) {  // many exact ties: the comparator's selection
        std::nth_element(l.e, l.e + (K - 1), l.e + n, [](const Entry& a, const Entry& b) { return better(a, b); });
        l.n = K;
        l.t = l.e[K - 1];
        return;
      }
      tie[nt++] = l.e[j];
    }
  }
  int64_t w = 0;
  for (int64_t j = 0; j < n; ++j) {  // (w <= j: entry j is read before anything is written over it)
    l.e[w] = l.e[j];
    w += key[j] > tau;
  }
  const int64_t need = K - above;  // >= 1: fewer than K keys lie above the K-th
  if (nt > need)
    std::nth_element(tie, tie + (need - 1), tie + nt, [](const Entry& a, const Entry& b) { return a.i < b.i; });
  int64_t last = -1;
  for (int64_t j = 0; j < need; ++j) {
    l.e[w++] = tie[j];
    last = std::max(last, tie[j].i);
  }
  l.n = K;
  l.t = {tie[0].v, last};
}

// Fold scores s[0:n] of rows [col0, col0 + n) into one list; l2 scores are 2 s - vsq. Portable version (the
// x86 ones below compare lanes as masks): blocks of 128 scores are tested against the threshold through their
// maximum, taken with four independent vector accumulators (one auto-vectorized reduction ran 4x slower: one
// dependency chain). Compiled per instruction set (target_clones), the body inlined into each clone.
template <bool L2>
TOPK_INLINE v16 scores16(const float* s, const float* vsq) {
  const v16 x = vload<v16>(s);
  if (!L2) return x;
  return 2.0f * x - vload<v16>(vsq);
}

TOPK_INLINE v16 vmax(v16 a, v16 b) { return a > b ? a : b; }

template <bool L2>
TOPK_INLINE void take(const float* s, const float* vsq, int64_t m, int64_t col0, List& l, int64_t K, int64_t L) {
  for (int64_t t = 0; t < m; ++t) {
    const float x = L2 ? 2.0f * s[t] - vsq[t] : s[t];
    if (!(x > l.t.v)) continue;  // NaN never enters; an equal score has a higher row than t: it never ranks before
    l.e[l.n++] = {x, col0 + t};
    if (l.n == L) compact(l, K);
  }
}

template <bool L2>
TOPK_INLINE void scan_body(const float* s, const float* vsq, int64_t n, int64_t col0, List& l, int64_t K,
                           int64_t L) {
  constexpr int64_t B = 128;
  int64_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    const float* sj = s + j0;
    const float* qj = L2 ? vsq + j0 : nullptr;
    v16 a0 = scores16<L2>(sj, qj), a1 = scores16<L2>(sj + 16, L2 ? qj + 16 : nullptr);
    v16 a2 = scores16<L2>(sj + 32, L2 ? qj + 32 : nullptr), a3 = scores16<L2>(sj + 48, L2 ? qj + 48 : nullptr);
    a0 = vmax(a0, scores16<L2>(sj + 64, L2 ? qj + 64 : nullptr));
    a1 = vmax(a1, scores16<L2>(sj + 80, L2 ? qj + 80 : nullptr));
    a2 = vmax(a2, scores16<L2>(sj + 96, L2 ? qj + 96 : nullptr));
    a3 = vmax(a3, scores16<L2>(sj + 112, L2 ? qj + 112 : nullptr));
    a0 = vmax(vmax(a0, a1), vmax(a2, a3));
    float mx = a0[0];
    for (int t = 1; t < 16; ++t) mx = mx > a0[t] ? mx : a0[t];
    if (mx > l.t.v) take<L2>(sj, qj, B, col0 + j0, l, K, L);
  }
  if (j0 < n) take<L2>(s + j0, L2 ? vsq + j0 : nullptr, n - j0, col0 + j0, l, K, L);
}

TOPK_CLONES void scan_row_ip(const float* s, int64_t n, int64_t col0, List& l, int64_t K, int64_t L) {
  scan_body<false>(s, nullptr, n, col0, l, K, L);
}
TOPK_CLONES void scan_row_l2(const float* s, const float* vsq, int64_t n, int64_t col0, List& l, int64_t K,
                             int64_t L) {
  scan_body<true>(s, vsq, n, col0, l, K, L);
}

#ifdef FASTREPR_TOPK_X86
// x86 versions: compare whole vectors with the threshold and visit only the lanes that beat it (a mask
// and count-trailing-zeros), so a block costs a few instructions whether or not it holds a candidate.
// A lane is re-checked against the current threshold before it enters (a compaction may have raised it).
template <bool L2>
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,bmi,bmi2"))) void scan_avx512(
    const float* s, const float* vsq, int64_t n, int64_t col0, List& l, int64_t K, int64_t L) {
  constexpr int64_t B = 64;
  int64_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    const __m512 t = _mm512_set1_ps(l.t.v);
    uint64_t mask = 0;
    for (int u = 0; u < 4; ++u) {
      __m512 x = _mm512_loadu_ps(s + j0 + 16 * u);
      if (L2) x = _mm512_sub_ps(_mm512_add_ps(x, x), _mm512_loadu_ps(vsq + j0 + 16 * u));
      mask |= static_cast<uint64_t>(_mm512_cmp_ps_mask(x, t, _CMP_GT_OQ)) << (16 * u);  // NaN: false
    }
    while (mask) {
      const int64_t j = j0 + __builtin_ctzll(mask);
      mask &= mask - 1;
      take<L2>(s + j, L2 ? vsq + j : nullptr, 1, col0 + j, l, K, L);
    }
  }
  if (j0 < n) take<L2>(s + j0, L2 ? vsq + j0 : nullptr, n - j0, col0 + j0, l, K, L);
}

template <bool L2>
__attribute__((target("avx2,fma,bmi,bmi2"))) void scan_avx2(const float* s, const float* vsq, int64_t n, int64_t col0,
                                                             List& l, int64_t K, int64_t L) {
  constexpr int64_t B = 32;
  int64_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    const __m256 t = _mm256_set1_ps(l.t.v);
    uint32_t mask = 0;
    for (int u = 0; u < 4; ++u) {
      __m256 x = _mm256_loadu_ps(s + j0 + 8 * u);
      if (L2) x = _mm256_sub_ps(_mm256_add_ps(x, x), _mm256_loadu_ps(vsq + j0 + 8 * u));
      mask |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(x, t, _CMP_GT_OQ))) << (8 * u);
    }
    while (mask) {
      const int64_t j = j0 + __builtin_ctz(mask);
      mask &= mask - 1;
      take<L2>(s + j, L2 ? vsq + j : nullptr, 1, col0 + j, l, K, L);
    }
  }
  if (j0 < n) take<L2>(s + j0, L2 ? vsq + j0 : nullptr, n - j0, col0 + j0, l, K, L);
}
#endif

using ScanIp = void (*)(const float*, int64_t, int64_t, List&, int64_t, int64_t);
using ScanL2 = void (*)(const float*, const float*, int64_t, int64_t, List&, int64_t, int64_t);

#ifdef FASTREPR_TOPK_X86
void scan_ip_avx512(const float* s, int64_t n, int64_t col0, List& l, int64_t K, int64_t L) {
  scan_avx512<false>(s, nullptr, n, col0, l, K, L);
}
void scan_ip_avx2(const float* s, int64_t n, int64_t col0, List& l, int64_t K, int64_t L) {
  scan_avx2<false>(s, nullptr, n, col0, l, K, L);
}
#endif

ScanIp scan_ip_fn() {
#ifdef FASTREPR_TOPK_X86
  if (isa() == "avx512") return scan_ip_avx512;
  if (isa() == "avx2") return scan_ip_avx2;
#endif
  return scan_row_ip;
}

ScanL2 scan_l2_fn() {
#ifdef FASTREPR_TOPK_X86
  if (isa() == "avx512") return scan_avx512<true>;
  if (isa() == "avx2") return scan_avx2<true>;
#endif
  return scan_row_l2;
}

#ifdef FASTREPR_TOPK_X86
// The int8 filter's fold: 16 scores s of rows [col0, col0 + w) (w <= 16) into one list, compared with the
// threshold as two 8-lane masks (l2: 2 s - vsq; vsq read only for the w valid rows).
template <bool L2>
__attribute__((target("avx2,fma,bmi"))) inline void fold16(const float* s, const float* vsq, int64_t w, int64_t col0,
                                                           List& l, int64_t K, int64_t L) {
  if (L2 && w < 16) {
    take<true>(s, vsq, w, col0, l, K, L);
    return;
  }
  const __m256 t = _mm256_set1_ps(l.t.v);
  __m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + 8);
  if (L2) {
    x0 = _mm256_sub_ps(_mm256_add_ps(x0, x0), _mm256_loadu_ps(vsq));
    x1 = _mm256_sub_ps(_mm256_add_ps(x1, x1), _mm256_loadu_ps(vsq + 8));
  }
  uint32_t mask = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(x0, t, _CMP_GT_OQ))) |
                  static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(x1, t, _CMP_GT_OQ))) << 8;
  mask &= (1u << w) - 1u;
  while (mask) {
    const int64_t j = __builtin_ctz(mask);
    mask &= mask - 1;
    take<L2>(s + j, L2 ? vsq + j : nullptr, 1, col0 + j, l, K, L);
  }
}

// One chunk of the int8 filter (rows [c0, c0 + nc) in table panels from v8, tb bytes apart): int8_group()
// queries x 16 rows at a time from the micro kernel, each query's 16 scores folded into its list at once (no
// tile written or read back).
void int8_chunk(const ScanProblem& p, const uint8_t* q8, const float* q8s, const float* q8n, int64_t Dq,
                int64_t q0, int64_t nq, const uint8_t* v8, int64_t tb, int64_t c0, int64_t nc, List* lists, int64_t P,
                int64_t part, int64_t K, int64_t L) {
  const int64_t g = int8_group();
  alignas(64) float sc[kInt8MaxGroup * 16], thr[kInt8MaxGroup];
  uint32_t masks[kInt8MaxGroup];
  for (int64_t i = 0; i < nq; i += g) {
    const int m = static_cast<int>(std::min<int64_t>(g, nq - i));
    const int64_t qa = q0 + i;
    for (int64_t j = 0; j * 16 < nc; ++j) {
      const int64_t w = std::min<int64_t>(16, nc - 16 * j), col = c0 + 16 * j;
      const uint8_t* panel = v8 + j * tb;
      if (w < 16) {  // the chunk's last, partial panel: every score out, folded lane by lane
        int8_micro(q8 + qa * Dq, Dq, q8s + qa, q8n + qa, m, panel, p.D, sc, nullptr, nullptr, nullptr);
        for (int r = 0; r < m; ++r) {
          List& l = lists[(qa + r) * P + part];
          if (p.vsq) fold16<true>(sc + 16 * r, p.vsq + col, w, col, l, K, L);
          else fold16<false>(sc + 16 * r, nullptr, w, col, l, K, L);
        }
        continue;
      }
      // thresholds as they stand: a lane that passes is checked again as it enters (they only rise)
      for (int r = 0; r < m; ++r) thr[r] = lists[(qa + r) * P + part].t.v;
      int8_micro(q8 + qa * Dq, Dq, q8s + qa, q8n + qa, m, panel, p.D, sc, thr, p.vsq ? p.vsq + col : nullptr,
                 masks);
      for (int r = 0; r < m; ++r) {
        uint32_t mask = masks[r];
        if (!mask) continue;
        List& l = lists[(qa + r) * P + part];
        while (mask) {
          const int64_t t = __builtin_ctz(mask);
          mask &= mask - 1;
          if (p.vsq) take<true>(sc + 16 * r + t, p.vsq + col + t, 1, col + t, l, K, L);
          else take<false>(sc + 16 * r + t, nullptr, 1, col + t, l, K, L);
        }
      }
    }
  }
}

// Seeded thresholds (int8 filter, K >= 128): before the scan, each query scores a sample of seed_panels(R, K)
// evenly spaced panels (m = 8 R / K rows), and its list starts with the threshold tau = the kSeedRank-th best
// of those scores instead of -inf. About 2K rows of the R score above tau (16 of m rows are 2K of R), so the
// list's warm-up (at first every score enters: at k = 100, 2000 of them per query, 8 compactions of 2K
// entries) becomes a few hundred entries. Nothing changes in the answer: every row left out still scores at
// most the list's final threshold or at most tau, and the scan reports the missing places of a query with
// fewer than K rows above tau (rare) as (tau, row -1), which states just that: every other row scores at most
// tau. The refinement treats row -1 as absent, and certifies with tau as the worst candidate's score.
constexpr int64_t kSeedRank = 16;

int64_t seed_panels(int64_t R, int64_t K) {
  const int64_t m = 8 * R / std::max<int64_t>(1, K);  // sample rows
  if (m < 16 || 16 * m > R) return 0;  // K < 128: the sample would cost more than the warm-up it saves
  return m / 16;  // (<= R / 256 panels, all of them full)
}

// tau [Q] for every query from the ns sampled panels (contiguous, tb bytes apart) whose first rows are cols[ns]
void int8_seeds(const ScanProblem& p, const uint8_t* q8, const float* q8s, const float* q8n, int64_t Dq,
                const uint8_t* sample, int64_t tb, const int64_t* cols, int64_t ns, int nt, float* tau) {
  const int64_t g = int8_group(), ng = (p.Q + g - 1) / g;
  ParallelGuard seeding;
#pragma omp parallel num_threads(nt) if (p.Q >= 64)
  {
    std::vector<Entry> store;
    std::vector<uint32_t> keys;
    seeding.run([&] {
      store.resize(static_cast<size_t>(kInt8MaxGroup * 2 * kSeedRank));
      keys.resize(store.size());
    });
    alignas(64) float sc[kInt8MaxGroup * 16];
#pragma omp for schedule(static)
    for (int64_t grp = 0; grp < ng; ++grp)
      seeding.run([&] {
        const int64_t qa = grp * g;
        const int m = static_cast<int>(std::min<int64_t>(g, p.Q - qa));
        List l[kInt8MaxGroup];
        for (int r = 0; r < m; ++r)
          l[r] = {store.data() + r * 2 * kSeedRank, keys.data() + r * 2 * kSeedRank, 0, {kNegInf, kMaxId}};
        for (int64_t j = 0; j < ns; ++j) {
          int8_micro(q8 + qa * Dq, Dq, q8s + qa, q8n + qa, m, sample + j * tb, p.D, sc, nullptr, nullptr, nullptr);
          for (int r = 0; r < m; ++r) {
            if (p.vsq) fold16<true>(sc + 16 * r, p.vsq + cols[j], 16, cols[j], l[r], kSeedRank, 2 * kSeedRank);
            else fold16<false>(sc + 16 * r, nullptr, 16, cols[j], l[r], kSeedRank, 2 * kSeedRank);
          }
        }
        for (int r = 0; r < m; ++r) {
          // the kSeedRank-th best sampled score (-inf where fewer are finite: no seed)
          if (l[r].n > kSeedRank) compact(l[r], kSeedRank);
          float t = l[r].n == kSeedRank ? l[r].e[0].v : kNegInf;
          for (int64_t e = 1; e < l[r].n; ++e) t = std::min(t, l[r].e[e].v);
          tau[qa + r] = t;
        }
      });
  }
  seeding.rethrow();
}
#endif

// rows [n, D] (row stride ld) -> contiguous bfloat16 bits [n, D], rounded to nearest even
TOPK_CLONES void to_bf16_generic(const float* x, int64_t ld, int64_t n, int64_t D, uint16_t* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * ld;
    uint16_t* o = out + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] = float_to_bf16(row[d]);
  }
}
#ifdef FASTREPR_TOPK_X86
// vcvtne2ps2bf16: 32 floats per instruction, the same rounding (denormal inputs become zero, which the
// refinement's bound allows for)
__attribute__((target("avx512f,avx512bf16"))) void to_bf16_avx512(const float* x, int64_t ld, int64_t n, int64_t D,
                                                                 uint16_t* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * ld;
    uint16_t* o = out + r * D;
    int64_t d = 0;
    for (; d + 32 <= D; d += 32) {
      const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + d + 16), _mm512_loadu_ps(row + d));
      _mm512_storeu_si512(o + d, reinterpret_cast<const __m512i&>(h));
    }
    for (; d < D; ++d) o[d] = float_to_bf16(row[d]);
  }
}
#endif

using ToBf16 = void (*)(const float*, int64_t, int64_t, int64_t, uint16_t*);

ToBf16 to_bf16_fn() {
#ifdef FASTREPR_TOPK_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return to_bf16_avx512;
#endif
  return to_bf16_generic;
}

// Squared error sum_d (x_d - b_d)^2 of the bf16 copy b [D] of a row x [D], computed in float32 (each
// difference is exact: b is within 2^-8 of x, Sterbenz); bf16_error_bound turns it into an upper bound on
// the error's norm.
TOPK_CLONES float bf16_row_error2(const float* x, int64_t D, const uint16_t* b) {
  float e2 = 0.0f;
#pragma omp simd reduction(+ : e2)
  for (int64_t d = 0; d < D; ++d) {
    const float diff = x[d] - bf16_to_float(b[d]);
    e2 += diff * diff;
  }
  return e2;
}

// A float32 sum of D squares is within gamma_{D+1} (relative) of the exact one, plus at most 2^-149 absolute
// per square that fell below float32's normal range (or 2^-126 where the CPU flushes those to zero).
double bf16_error_bound(double e2, int64_t D) {
  const double g = (D + 1) * 0x1p-24 / (1.0 - (D + 1) * 0x1p-24);
  return std::sqrt(e2 * (1.0 + g) + static_cast<double>(D) * 0x1p-126) * (1.0 + 0x1p-40);
}

}  // namespace

const char* topk_isa() { return isa().c_str(); }

void bf16_pack_table(const float* v, int64_t ldv, int64_t n, int64_t D, uint16_t* table, int threads) {
  const ToBf16 to_bf16 = to_bf16_fn();
  const int64_t ldt = bf16_table_cols(D);
#pragma omp parallel for schedule(static, 256) num_threads(clamp_threads(threads)) if (n >= 1024)
  for (int64_t r = 0; r < n; ++r) {
    uint16_t* t = table + r * ldt;
    to_bf16(v + r * ldv, ldv, 1, D, t);
    const double e = bf16_error_bound(bf16_row_error2(v + r * ldv, D, t), D);
    float f = static_cast<float>(e);
    if (static_cast<double>(f) < e) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    std::memcpy(t + D, &f, sizeof f);
  }
}

double bf16_table_emax(const uint16_t* table, int64_t n, int64_t D) {
  const int64_t ldt = bf16_table_cols(D);
  float worst = 0.0f;
  for (int64_t r = 0; r < n; ++r) {
    float f;
    std::memcpy(&f, table + r * ldt + D, sizeof f);
    worst = std::max(worst, f);
  }
  return worst;
}

void topk_scan(const ScanProblem& p, const ScanPlan& plan, float* out_v, int64_t* out_i) {
  const int nt = clamp_threads(plan.threads);
  const int64_t K = p.K, L = 2 * p.K;
  const int64_t bq = std::max<int64_t>(1, plan.block_q), bv = std::max<int64_t>(1, plan.block_v);
  // An item owns G consecutive query tiles and one range of rows: each chunk of rows is read (and, for
  // bf16, converted) once per G tiles. G > 1 only when the queries alone give every thread 4+ items.
  const int64_t tiles = (p.Q + bq - 1) / bq;
  // int8: rows are quantized and packed per item and chunk (unless a table holds them), and each list pays its
  // own warm-up (its first 2K scores all enter), so with enough queries each thread takes an equal share of
  // them against all the rows (one list per query; the rows packed once per thread); with few, the rows are
  // split.
  int64_t G = tiles >= 16 * nt ? 4 : tiles >= 8 * nt ? 2 : 1;
  if (plan.int8) {
    // items of at most 4096 queries, as many as a multiple of the thread count (3 items on 2 threads left
    // one idle for a third of the kNN probe's search)
    const int64_t gmax = std::max<int64_t>(1, 4096 / bq), items = nt * ((tiles + nt * gmax - 1) / (nt * gmax));
    G = tiles >= 2 * nt ? (tiles + items - 1) / items : tiles;
  }
  const int64_t nb = (tiles + G - 1) / G, span_q = G * bq;
  // Row ranges: enough items for every thread (and some slack for the dynamic schedule) when the queries
  // alone are too few; each range at least one tile long.
  // Each range's lists pay their own warm-up (at k = 100 a second range cost 1000 queries of D = 128 a
  // quarter of their scan), so no more ranges than that: one when the query items already divide evenly
  // among the threads, and when they are fewer than the threads and divide them, just enough for all.
  const int64_t want = plan.int8                      ? (nb >= nt ? 1 : 2 * nt)
                       : nb >= 2 * nt || nb % nt == 0 ? 1
                       : nb < nt && nt % nb == 0      ? nt / nb
                                                      : (2 * nt + nb - 1) / nb;
  const int64_t P = std::max<int64_t>(1, std::min(want, (p.R + bv - 1) / bv));
  const int64_t span = ((p.R + P - 1) / P + bv - 1) / bv * bv;
  std::vector<Entry> store(static_cast<size_t>(p.Q * P * L));
  std::vector<List> lists(static_cast<size_t>(p.Q * P));
  std::vector<uint32_t> keys(store.size());
  for (int64_t x = 0; x < p.Q * P; ++x) lists[x] = {store.data() + x * L, keys.data() + x * L, 0, {kNegInf, kMaxId}};
  const TileFn tile = tile_fn();
  const ScanIp scan_ip = scan_ip_fn();
  const ScanL2 scan_l2 = scan_l2_fn();
  const ToBf16 to_bf16 = plan.gemm_bf16 ? to_bf16_fn() : nullptr;
  const char trans_t = 'T', trans_n = 'N';
  const float one = 1.0f, zero = 0.0f;
  (void)nt;
  // int8: every query's 8-bit copy once, up front
  const int64_t Dq = int8_query_bytes(p.D), bvp = (bv + 15) / 16 * 16;
  std::vector<uint8_t> q8(plan.int8 ? static_cast<size_t>(p.Q * Dq) : 0);
  std::vector<float> q8s(plan.int8 ? static_cast<size_t>(p.Q) : 0), q8n(q8s.size());
  if (to_bf16) {
    // bf16: every query's copy error and copy norm up front (float64 sums, the same conversion as the tiles)
    ParallelGuard measuring;
#pragma omp parallel num_threads(nt) if (p.Q >= 64)
    {
      std::vector<uint16_t> row;
      measuring.run([&] { row.resize(static_cast<size_t>(p.D)); });
#pragma omp for schedule(static)
      for (int64_t q = 0; q < p.Q; ++q)
        measuring.run([&] {
          const float* x = p.q + q * p.ldq;
          to_bf16(x, p.ldq, 1, p.D, row.data());
          double e2 = 0.0, n2 = 0.0;
          for (int64_t d = 0; d < p.D; ++d) {
            const double back = bf16_to_float(row[d]);
            e2 += (x[d] - back) * (x[d] - back);
            n2 += back * back;
          }
          plan.stats->qerr[q] = std::sqrt(e2) * (1.0 + 0x1p-40);
          plan.stats->qnorm[q] = std::sqrt(n2) * (1.0 + 0x1p-40);
        });
    }
    measuring.rethrow();
  }
  if (plan.int8) {
    ParallelGuard packing;  // (int8_pack_queries allocates a row of integers)
#pragma omp parallel for schedule(static) num_threads(nt) if (p.Q >= 64)
    for (int64_t q = 0; q < p.Q; ++q)
      packing.run([&] {
        int8_pack_queries(p.q + q * p.ldq, p.ldq, 1, p.D, q8.data() + q * Dq, q8s.data() + q,
                          plan.stats->qerr + q, plan.stats->qnorm + q, q8n.data() + q);
      });
    packing.rethrow();
    plan.stats->emax = plan.stats->table ? int8_table_emax(plan.stats->table, p.R, p.D) : 0.0;
  }
  // int8, K >= 128: every list starts at its query's seed (notes above int8_seeds); tau stays empty otherwise
  std::vector<float> tau;
#ifdef FASTREPR_TOPK_X86
  if (const int64_t ns = plan.int8 ? seed_panels(p.R, K) : 0) {
    const int64_t tb8 = int8_table_bytes(p.D), full = p.R / 16;
    std::vector<uint8_t> buf(static_cast<size_t>(ns * tb8 + 64));
    uint8_t* sample = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    std::vector<int64_t> cols(static_cast<size_t>(ns));
    double unused = 0.0;  // (the scan packs these rows again and counts their errors then)
    for (int64_t j = 0; j < ns; ++j) {
      cols[j] = 16 * (j * full / ns);
      if (plan.stats->table) std::memcpy(sample + j * tb8, plan.stats->table + (cols[j] / 16) * tb8, tb8);
      else int8_pack_rows(p.v + cols[j] * p.ldv, p.ldv, 16, p.D, sample + j * tb8, &unused);
    }
    tau.resize(static_cast<size_t>(p.Q));
    int8_seeds(p, q8.data(), q8s.data(), q8n.data(), Dq, sample, tb8, cols.data(), ns, nt, tau.data());
    for (int64_t x = 0; x < p.Q * P; ++x) lists[x].t.v = tau[x / P];
  }
#endif
  const int64_t ldt = bf16_table_cols(p.D);
  if (to_bf16) plan.stats->emax = bf16_table_emax(plan.stats->bf16_table, p.R, p.D);
  const int64_t tb = plan.int8 ? int8_table_bytes(p.D) : 0;
  // Per-thread buffers and the items run under a guard: an allocation failure becomes a Python exception
  // after the region (common.h), never std::terminate.
  ParallelGuard guard;
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> S;
    std::vector<uint16_t> q16;
    // int8 without a table: one chunk's panels (64-byte aligned: the kernel loads them aligned)
    std::vector<uint8_t> v8buf;
    uint8_t* v8 = nullptr;
    double emax = 0.0;  // int8: the largest row error of the chunks this thread packed
    guard.run([&] {
      if (!plan.int8) S.resize(static_cast<size_t>(bq * bv));
      if (plan.gemm_bf16) {
        q16.resize(static_cast<size_t>(span_q * p.D));
      }
      if (plan.int8 && !plan.stats->table) {
        v8buf.resize(static_cast<size_t>(bvp / 16 * tb + 64));
        v8 = v8buf.data() + (64 - reinterpret_cast<uintptr_t>(v8buf.data()) % 64) % 64;
      }
    });
    const int prev = plan.set_threads ? plan.set_threads(1) : 0;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < nb * P; ++item) {
      guard.run([&] {
        const int64_t b = item / P, part = item % P;
        const int64_t q0 = b * span_q, nq_item = std::min(span_q, p.Q - q0);
        const int64_t lo = part * span, hi = std::min(p.R, lo + span);
        if (to_bf16) to_bf16(p.q + q0 * p.ldq, p.ldq, nq_item, p.D, q16.data());
        for (int64_t c0 = lo; c0 < hi; c0 += bv) {
          const int64_t nc = std::min(bv, hi - c0);
          if (plan.int8) {
#ifdef FASTREPR_TOPK_X86
            const uint8_t* chunk = v8;
            if (plan.stats->table) chunk = plan.stats->table + (c0 / 16) * tb;  // (c0: a multiple of bv, of 16)
            else int8_pack_rows(p.v + c0 * p.ldv, p.ldv, nc, p.D, v8, &emax);
            int8_chunk(p, q8.data(), q8s.data(), q8n.data(), Dq, q0, nq_item, chunk, tb, c0, nc,
                       lists.data(), P, part, K, L);
#endif
            continue;
          }
          for (int64_t t0 = 0; t0 < nq_item; t0 += bq) {
            const int64_t nq = std::min(bq, nq_item - t0), qa = q0 + t0;
            // row-major S [nq, nc] = Q_tile V_chunk^T is the column-major nc x nq matrix V_chunk Q_tile^T
            if (to_bf16)
              plan.gemm_bf16(&trans_t, &trans_n, &nc, &nq, &p.D, &one, plan.stats->bf16_table + c0 * ldt, &ldt,
                             q16.data() + t0 * p.D, &p.D, &zero, S.data(), &nc);
            else if (plan.gemm)
              plan.gemm(&trans_t, &trans_n, &nc, &nq, &p.D, &one, p.v + c0 * p.ldv, &p.ldv, p.q + qa * p.ldq,
                        &p.ldq, &zero, S.data(), &nc);
            else
              tile(p.q + qa * p.ldq, p.ldq, nq, p.v + c0 * p.ldv, p.ldv, nc, p.D, S.data(), nc);
            for (int64_t r = 0; r < nq; ++r) {
              List& l = lists[(qa + r) * P + part];
              if (p.vsq) scan_l2(S.data() + r * nc, p.vsq + c0, nc, c0, l, K, L);
              else scan_ip(S.data() + r * nc, nc, c0, l, K, L);
            }
          }
        }
      });
    }
    if (plan.set_threads) plan.set_threads(prev);
    if (plan.int8) {
#pragma omp critical(fastrepr_int8_emax)
      plan.stats->emax = std::max(plan.stats->emax, emax);
    }
  }
  guard.rethrow();
  // Merge the ranges' lists of each query (their entries are contiguous in the store) and sort the best K.
#pragma omp parallel for schedule(static) num_threads(nt) if (p.Q >= 64)
  for (int64_t q = 0; q < p.Q; ++q) {
    Entry* first = store.data() + q * P * L;
    int64_t n = 0;
    for (int64_t part = 0; part < P; ++part) {
      const List& l = lists[q * P + part];
      std::memmove(first + n, l.e, static_cast<size_t>(l.n) * sizeof(Entry));
      n += l.n;
    }
    const int64_t m = std::min(n, K);
    std::partial_sort(first, first + m, first + n, better);
    const float pad = tau.empty() ? kNegInf : tau[q];  // (seeded: no row left out scores above it)
    for (int64_t j = 0; j < K; ++j) {
      out_v[q * K + j] = j < m ? first[j].v : pad;
      out_i[q * K + j] = j < m ? first[j].i : -1;
    }
  }
}

}  // namespace fastrepr
