// The int8 filter of the candidate scan (topk.h, ScanPlan::int8): products of 8-bit copies of the rows and
// 7- or 8-bit copies of the queries, exact in int32, on AVX2 (vpmaddubsw + vpmaddwd: 32 multiply-adds per
// pair of instructions, about twice float32 FMA's rate on the Zen 3 this was written for, which has no
// AVX-512 or VNNI). The refinement's bound then covers the rounding of the copies (see FilterStats).
//
// Rows: each row r gets its own scale s_r = max_d |v_rd| / 127 and integers v'_rd = round(v_rd / s_r) in
// [-127, 127]; ṽ_r = s_r·v'_r is the row the products see and e_r = |v_r - ṽ_r| its error (float64 sum of
// squares of FMA-computed differences, rounded up). Queries the same way: s_q = max |q_d| / 127, q'_d in
// [-127, 127]. vpmaddubsw multiplies unsigned by signed bytes, so the kernel multiplies |v'| (vpabsb, once
// per panel step for all its queries) by sign(v')·q' (vpsignb): four instructions per 32 products.
// (An earlier variant with 7-bit queries offset by 64 into unsigned bytes saved the vpsignb, 4% faster at
// D = 300 once both read the same panels, but its query error is twice as large: at k = 100 it certified
// 0-41% of the queries that this one certifies at 100% with the same candidates, on the Zen 3 of issue 11.)
// No sum can saturate: a pair of products is at most 2·127·127 = 32258 < 2^15, and a row's sum at most
// 127·127·D < 2^31 for D <= 65536.
// The fold gets float32(s_q·s_r)·float32(q'.v'_r) + |q̃|·e_r, which is q̃.ṽ_r + |q̃|·e_r up to three float32
// roundings (the sum is exact and, below 2^24 for D <= 1040, so is its conversion; above, one more rounding,
// 2^-24 relative). Ranking by q̃.ṽ_r + |q̃|·e_r (an upper bound of q̃.v_r) rather than by q̃.ṽ_r lets a row whose
// copy is better than the worst one count its own error: the scan returns these values less |q̃|·max_r e_r,
// which are then within the same bound of the exact score (ops/topk_search._bound) but rank the rows left
// out lower, so more queries are certified at the same candidate count.
//
// Layout: rows in panels of 16, each panel [Dp/4][16 rows][4 bytes] (Dp = D rounded up to 4, zero-padded), so
// one 4-dim step of a panel is two 32-byte vectors, followed by the panel's 16 scales and 16 errors (float32):
// int8_table_bytes per panel, a multiple of 64. The same layout serves the scan's per-chunk copies and a
// table made once for an index (EmbeddingIndex keeps one: a search then reads a quarter of the float32 rows'
// bytes); queries [n][int8_query_bytes] bytes, padded with zeros. The micro kernel holds 5 queries x 16 rows
// of int32 sums in 10 ymm registers (the ones of vpmaddwd in another) and hands their scores to the fold.
//
// With AVX-512 VNNI (Zen 4, Intel since Cascade Lake; used where the search kernel's ISA is avx512, so
// FASTREPR_TOPK_ISA=avx2 turns it off too) the micro kernel is one vpdpbusd per query and panel step: a
// panel step is one zmm of 64 bytes, made unsigned by flipping its top bits (v' + 128 in [1, 255]), and each
// query's 4 bytes broadcast from memory; sum_d (v'_d + 128)·q'_d - 128·sum_d q'_d = q'.v' exactly (at most
// 255·127·D < 2^31 for D <= 65536), the second term stored after each packed query (int8_query_bytes). It
// holds 8 queries x 16 rows of sums and folds them with the same float32 operations as the AVX2 kernel, so
// both give the same scores, bit for bit. (Zen 4: about 2.5x the AVX2 kernel's products per cycle.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common.h"
#include "topk.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FASTREPR_INT8_X86 1
#endif

namespace fastrepr {

bool int8_supported() {
#ifdef FASTREPR_INT8_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

namespace {
bool vnni() {
#ifdef FASTREPR_INT8_X86
  static const bool on = [] {
    __builtin_cpu_init();
    return std::strcmp(topk_isa(), "avx512") == 0 && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return on;
#else
  return false;
#endif
}
}  // namespace

const char* int8_isa() { return !int8_supported() ? "" : vnni() ? "avx512-vnni" : "avx2"; }

int64_t int8_query_bytes(int64_t D) { return (D + 3) / 4 * 4 + 4; }

#ifdef FASTREPR_INT8_X86
namespace {

constexpr int kPanel = 16;  // rows per panel
constexpr int kMR = 5;      // queries per micro kernel
constexpr int kMRV = 8;     // the same, VNNI
static_assert(kMRV <= kInt8MaxGroup, "int8_group() must fit the callers' buffers");

// max |x_d| over a row (AVX2)
__attribute__((target("avx2,fma"))) float max_abs(const float* x, int64_t D) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + d)));
  alignas(32) float t[8];
  _mm256_store_ps(t, m);
  float r = 0.0f;
  for (float y : t) r = std::max(r, y);
  for (; d < D; ++d) r = std::max(r, std::fabs(x[d]));
  return r;
}

// out[d] = round(x_d / s) (nearest, ties to even; clamped to [-limit, limit], which x·(1/s) may pass by a
// rounding) for s = max_d |x_d| / limit, and err2 = sum_d (x_d - s·out[d])^2 in float64 of FMA differences
// (each within 2^-24 of its own value). Returns s; a row whose s would fall below 2^-126·limit (or is zero)
// gets s = 0 and out = 0, its whole norm counted as error: the bound stays exact, the row only loses
// ranking precision.
__attribute__((target("avx2,fma"))) float quantize(const float* x, int64_t D, float limit, int32_t* out,
                                                   double* err2) {
  const float mx = max_abs(x, D);
  float s = mx / limit;
  if (!(mx >= 1e-30f) || !std::isfinite(s)) s = 0.0f;
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  const __m256 vinv = _mm256_set1_ps(inv), vs = _mm256_set1_ps(-s), hi = _mm256_set1_ps(limit),
               lo = _mm256_set1_ps(-limit);
  __m256d e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    const __m256 xv = _mm256_loadu_ps(x + d);
    __m256 y = _mm256_round_ps(_mm256_mul_ps(xv, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + d), _mm256_cvtps_epi32(y));
    const __m256 diff = _mm256_fmadd_ps(vs, y, xv);
    const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(diff)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(diff, 1));
    e0 = _mm256_fmadd_pd(d0, d0, e0);
    e1 = _mm256_fmadd_pd(d1, d1, e1);
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, _mm256_add_pd(e0, e1));
  double e = (t[0] + t[1]) + (t[2] + t[3]);
  for (; d < D; ++d) {
    float y = std::nearbyint(x[d] * inv);
    y = std::min(limit, std::max(-limit, y));
    out[d] = static_cast<int32_t>(y);
    const float diff = std::fma(-s, y, x[d]);
    e += static_cast<double>(diff) * diff;
  }
  *err2 = e;
  return s;
}

// the bytes of one row's integers qi [Dp] into its panel lane (4 bytes of each 4-dim step, steps 64 bytes
// apart)
__attribute__((target("avx2,fma"))) void pack_row(const int32_t* qi, int64_t Dp, int8_t* lane) {
  int64_t d = 0;
  for (; d + 8 <= Dp; d += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qi + d));
    const __m256i w = _mm256_packs_epi32(v, v);  // int16: [v0..v3 v0..v3 | v4..v7 v4..v7]
    const __m256i b = _mm256_packs_epi16(w, w);  // bytes: v0..v3 in word 0, v4..v7 in word 4
    int8_t* o = lane + (d / 4) * 64;
    const int32_t lo = _mm256_extract_epi32(b, 0), hi = _mm256_extract_epi32(b, 4);
    std::memcpy(o, &lo, 4);
    std::memcpy(o + 64, &hi, 4);
  }
  for (; d < Dp; d += 4) {
    int8_t b[4];
    for (int j = 0; j < 4; ++j) b[j] = static_cast<int8_t>(qi[d + j]);
    std::memcpy(lane + (d / 4) * 64, b, 4);
  }
}

}  // namespace

int64_t int8_panel_bytes(int64_t D) { return kPanel * ((D + 3) / 4 * 4); }

int64_t int8_table_bytes(int64_t D) { return int8_panel_bytes(D) + 2 * 4 * kPanel; }

void int8_pack_rows(const float* v, int64_t ldv, int64_t n, int64_t D, uint8_t* table, double* emax) {
  const int64_t Dp = (D + 3) / 4 * 4, np = (n + kPanel - 1) / kPanel, pb = int8_panel_bytes(D),
                tb = int8_table_bytes(D);
  std::vector<int32_t> q(static_cast<size_t>(Dp));
  double worst = 0.0;
  for (int64_t j = 0; j < np; ++j) {
    uint8_t* panel = table + j * tb;
    std::memset(panel, 0, static_cast<size_t>(tb));
    float* scale = reinterpret_cast<float*>(panel + pb);
    float* err = scale + kPanel;
    for (int64_t l = 0; l < kPanel && j * kPanel + l < n; ++l) {
      const int64_t r = j * kPanel + l;
      int32_t* qi = q.data();
      double e2 = 0.0;
      scale[l] = quantize(v + r * ldv, D, 127.0f, qi, &e2);
      for (int64_t d = D; d < Dp; ++d) qi[d] = 0;
      pack_row(qi, Dp, reinterpret_cast<int8_t*>(panel) + l * 4);
      worst = std::max(worst, e2);
      // |true error| <= sqrt(e2)·(1 + 2^-23) (each difference within 2^-24 of itself; the float64 sum's
      // rounding is far below); as float32, rounded up
      const double e = std::sqrt(e2) * (1.0 + 2.0 * 0x1p-23);
      err[l] = std::nextafter(static_cast<float>(e), std::numeric_limits<float>::infinity());
    }
  }
  *emax = std::max(*emax, std::sqrt(worst) * (1.0 + 2.0 * 0x1p-23));
}

void int8_pack_table(const float* v, int64_t ldv, int64_t n, int64_t D, uint8_t* table, int threads) {
  const int64_t np = (n + kPanel - 1) / kPanel, tb = int8_table_bytes(D), step = 64;  // panels per task
  ParallelGuard guard;  // (int8_pack_rows allocates a row of integers)
#pragma omp parallel for schedule(dynamic, 1) num_threads(clamp_threads(threads)) if (np > step)
  for (int64_t j = 0; j < np; j += step)
    guard.run([&] {
      double unused = 0.0;
      const int64_t r0 = j * kPanel;
      int8_pack_rows(v + r0 * ldv, ldv, std::min(n - r0, step * kPanel), D, table + j * tb, &unused);
    });
  guard.rethrow();
}

double int8_table_emax(const uint8_t* table, int64_t n, int64_t D) {
  const int64_t pb = int8_panel_bytes(D), tb = int8_table_bytes(D);
  float worst = 0.0f;
  for (int64_t r = 0; r < n; ++r) {
    const float* err = reinterpret_cast<const float*>(table + (r / kPanel) * tb + pb) + kPanel;
    worst = std::max(worst, err[r % kPanel]);
  }
  return worst;
}

void int8_pack_queries(const float* x, int64_t ldq, int64_t n, int64_t D, uint8_t* out, float* scale, double* err,
                       double* norm, float* norm32) {
  const int64_t Dp = (D + 3) / 4 * 4, Dq = int8_query_bytes(D);
  std::vector<int32_t> qi(static_cast<size_t>(D));
  for (int64_t r = 0; r < n; ++r) {
    double e2 = 0.0;
    const float s = quantize(x + r * ldq, D, 127.0f, qi.data(), &e2);
    scale[r] = s;
    uint8_t* o = out + r * Dq;
    double nn = 0.0;
    int64_t sum = 0;
    for (int64_t d = 0; d < D; ++d) {
      o[d] = static_cast<uint8_t>(qi[d]);  // the two's complement byte
      const double y = static_cast<double>(s) * qi[d];  // exact in float64
      nn += y * y;
      sum += qi[d];
    }
    for (int64_t d = D; d < Dp; ++d) o[d] = 0;
    const int32_t flip = static_cast<int32_t>(128 * sum);  // the VNNI kernel's correction (|.| < 2^31)
    std::memcpy(o + Dp, &flip, 4);
    err[r] = std::sqrt(e2) * (1.0 + 2.0 * 0x1p-23);
    norm[r] = std::sqrt(nn) * (1.0 + 0x1p-40);  // |q̃|, rounded up
    norm32[r] = std::nextafter(static_cast<float>(norm[r]), std::numeric_limits<float>::infinity());
  }
}

namespace {

// sums [MR][16] of queries q (MR rows of Dp bytes, stride ldq) against one panel, into S [MR][16]:
// qs[i]·vs[j]·sum + qt[i]·er[j].
// thr set: only the scores of queries with a lane above thr[i] (l2: 2 s - vsq[j] above it) are stored, and
// masks[i] gets those lanes (the fold's test, done while the scores are still in registers).
template <int MR>
__attribute__((target("avx2,fma"))) inline void micro(const uint8_t* q, int64_t ldq, const float* qs, const float* qt,
                                                      const int8_t* panel, const float* vs, const float* er,
                                                      int64_t steps, float* S, const float* thr, const float* vsq,
                                                      uint32_t* masks) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a0[MR], a1[MR];
  const int8_t* p = panel;
  if constexpr (MR == kMR) {
    // the whole loop in assembly: compilers schedule a step's products first and spill the sums (or keep the
    // sums in memory between steps), which ran at 40-60% of this. Five queries, so that the ones stay in a
    // register (ymm11): with them read from memory too, six queries need 32 loads a step and ran 45-55%
    // slower. |v'| is taken once a step (vpabsb) for the five queries, v' read again as vpsignb's operand.
    const uint8_t* qa = q;
    int64_t n = steps;
#define FASTREPR_INT8_ROW(ADDR, A, B)                 \
  "vpbroadcastd " ADDR ", %%ymm14\n\t"                \
  "vpsignb (%[p]), %%ymm14, %%ymm15\n\t"              \
  "vpmaddubsw %%ymm15, %%ymm12, %%ymm15\n\t"           \
  "vpmaddwd %%ymm11, %%ymm15, %%ymm15\n\t"            \
  "vpaddd %%ymm15, %[" A "], %[" A "]\n\t"             \
  "vpsignb 32(%[p]), %%ymm14, %%ymm14\n\t"            \
  "vpmaddubsw %%ymm14, %%ymm13, %%ymm14\n\t"           \
  "vpmaddwd %%ymm11, %%ymm14, %%ymm14\n\t"            \
  "vpaddd %%ymm14, %[" B "], %[" B "]\n\t"
    __asm__("vmovdqu (%[one]), %%ymm11\n\t"
            "vpxor %[x00], %[x00], %[x00]\n\t vpxor %[x01], %[x01], %[x01]\n\t vpxor %[x02], %[x02], %[x02]\n\t"
            "vpxor %[x03], %[x03], %[x03]\n\t vpxor %[x04], %[x04], %[x04]\n\t"
            "vpxor %[x10], %[x10], %[x10]\n\t vpxor %[x11], %[x11], %[x11]\n\t vpxor %[x12], %[x12], %[x12]\n\t"
            "vpxor %[x13], %[x13], %[x13]\n\t vpxor %[x14], %[x14], %[x14]\n\t"
            "1:\n\t"
            "vpabsb (%[p]), %%ymm12\n\t"
            "vpabsb 32(%[p]), %%ymm13\n\t"
            FASTREPR_INT8_ROW("(%[qa])", "x00", "x10") FASTREPR_INT8_ROW("(%[qa],%[ld],1)", "x01", "x11")
            FASTREPR_INT8_ROW("(%[qa],%[ld],2)", "x02", "x12") FASTREPR_INT8_ROW("(%[qa],%[ld3],1)", "x03", "x13")
            FASTREPR_INT8_ROW("(%[qa],%[ld],4)", "x04", "x14")
            "add $64, %[p]\n\t"
            "add $4, %[qa]\n\t"
            "dec %[n]\n\t"
            "jnz 1b\n\t"
            : [x00] "=&x"(a0[0]), [x01] "=&x"(a0[1]), [x02] "=&x"(a0[2]), [x03] "=&x"(a0[3]), [x04] "=&x"(a0[4]),
              [x10] "=&x"(a1[0]), [x11] "=&x"(a1[1]), [x12] "=&x"(a1[2]), [x13] "=&x"(a1[3]), [x14] "=&x"(a1[4]),
              [p] "+r"(p), [qa] "+r"(qa), [n] "+r"(n)
            : [ld] "r"(ldq), [ld3] "r"(3 * ldq), [one] "r"(&ones)
            : "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
#undef FASTREPR_INT8_ROW
  } else {
    for (int i = 0; i < MR; ++i) a0[i] = a1[i] = _mm256_setzero_si256();
    for (int64_t s = 0; s < steps; ++s, p += 64) {
      const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32));
      const __m256i u0 = _mm256_abs_epi8(v0), u1 = _mm256_abs_epi8(v1);
      for (int i = 0; i < MR; ++i) {
        int32_t w;
        std::memcpy(&w, q + i * ldq + 4 * s, 4);
        const __m256i b = _mm256_set1_epi32(w);
        const __m256i s0 = _mm256_sign_epi8(b, v0), s1 = _mm256_sign_epi8(b, v1);
        a0[i] = _mm256_add_epi32(a0[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u0, s0), ones));
        a1[i] = _mm256_add_epi32(a1[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u1, s1), ones));
      }
    }
  }
  const __m256 s0 = _mm256_loadu_ps(vs), s1 = _mm256_loadu_ps(vs + 8);
  const __m256 e0 = _mm256_loadu_ps(er), e1 = _mm256_loadu_ps(er + 8);
  for (int i = 0; i < MR; ++i) {
    const __m256 qq = _mm256_set1_ps(qs[i]), tt = _mm256_set1_ps(qt[i]);
    const __m256 x0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0[i]), _mm256_mul_ps(qq, s0), _mm256_mul_ps(tt, e0));
    const __m256 x1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1[i]), _mm256_mul_ps(qq, s1), _mm256_mul_ps(tt, e1));
    if (thr) {
      __m256 y0 = x0, y1 = x1;
      if (vsq) {
        y0 = _mm256_sub_ps(_mm256_add_ps(x0, x0), _mm256_loadu_ps(vsq));
        y1 = _mm256_sub_ps(_mm256_add_ps(x1, x1), _mm256_loadu_ps(vsq + 8));
      }
      const __m256 t = _mm256_set1_ps(thr[i]);
      masks[i] = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(y0, t, _CMP_GT_OQ))) |
                 static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(y1, t, _CMP_GT_OQ))) << 8;
      if (!masks[i]) continue;
    }
    _mm256_storeu_ps(S + i * kPanel, x0);
    _mm256_storeu_ps(S + i * kPanel + 8, x1);
  }
}

// The VNNI micro kernel (header): the same sums and fold as micro, 16 rows in one zmm.
template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"))) inline void micro_vnni(
    const uint8_t* q, int64_t ldq, const float* qs, const float* qt, const int8_t* panel, const float* vs,
    const float* er, int64_t steps, float* S, const float* thr, const float* vsq, uint32_t* masks) {
  __m512i a[MR];
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* p = panel;
  if constexpr (MR == kMRV) {
    // in assembly, as the AVX2 kernel: compilers copy every sum between registers once a step (vpdpbusd
    // overwrites its sum), a third more instructions
    const uint8_t *qa = q, *qb = q + 5 * ldq;
    int64_t n = steps;
    __m512i u;
    __asm__("vpxord %[a0], %[a0], %[a0]\n\t vpxord %[a1], %[a1], %[a1]\n\t vpxord %[a2], %[a2], %[a2]\n\t"
            "vpxord %[a3], %[a3], %[a3]\n\t vpxord %[a4], %[a4], %[a4]\n\t vpxord %[a5], %[a5], %[a5]\n\t"
            "vpxord %[a6], %[a6], %[a6]\n\t vpxord %[a7], %[a7], %[a7]\n\t"
            "1:\n\t"
            "vpxord (%[p]), %[flip], %[u]\n\t"
            "vpdpbusd (%[qa])%{1to16%}, %[u], %[a0]\n\t"
            "vpdpbusd (%[qa],%[ld],1)%{1to16%}, %[u], %[a1]\n\t"
            "vpdpbusd (%[qa],%[ld],2)%{1to16%}, %[u], %[a2]\n\t"
            "vpdpbusd (%[qa],%[ld3],1)%{1to16%}, %[u], %[a3]\n\t"
            "vpdpbusd (%[qa],%[ld],4)%{1to16%}, %[u], %[a4]\n\t"
            "vpdpbusd (%[qb])%{1to16%}, %[u], %[a5]\n\t"
            "vpdpbusd (%[qb],%[ld],1)%{1to16%}, %[u], %[a6]\n\t"
            "vpdpbusd (%[qb],%[ld],2)%{1to16%}, %[u], %[a7]\n\t"
            "add $64, %[p]\n\t"
            "add $4, %[qa]\n\t"
            "add $4, %[qb]\n\t"
            "dec %[n]\n\t"
            "jnz 1b\n\t"
            : [a0] "=&v"(a[0]), [a1] "=&v"(a[1]), [a2] "=&v"(a[2]), [a3] "=&v"(a[3]), [a4] "=&v"(a[4]),
              [a5] "=&v"(a[5]), [a6] "=&v"(a[6]), [a7] "=&v"(a[7]), [u] "=&v"(u),
              [p] "+r"(p), [qa] "+r"(qa), [qb] "+r"(qb), [n] "+r"(n)
            : [flip] "v"(flip), [ld] "r"(ldq), [ld3] "r"(3 * ldq)
            : "memory", "cc");
  } else {
    for (int i = 0; i < MR; ++i) a[i] = _mm512_setzero_si512();
    for (int64_t s = 0; s < steps; ++s, p += 64) {
      const __m512i u = _mm512_xor_si512(_mm512_loadu_si512(p), flip);
      for (int i = 0; i < MR; ++i) {
        int32_t w;
        std::memcpy(&w, q + i * ldq + 4 * s, 4);
        a[i] = _mm512_dpbusd_epi32(a[i], u, _mm512_set1_epi32(w));
      }
    }
  }
  const __m512 s16 = _mm512_loadu_ps(vs), e16 = _mm512_loadu_ps(er);
  for (int i = 0; i < MR; ++i) {
    int32_t c;
    std::memcpy(&c, q + i * ldq + 4 * steps, 4);  // 128·sum_d q'_d
    const __m512i dot = _mm512_sub_epi32(a[i], _mm512_set1_epi32(c));
    const __m512 x = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(_mm512_set1_ps(qs[i]), s16),
                                     _mm512_mul_ps(_mm512_set1_ps(qt[i]), e16));
    if (thr) {
      __m512 y = x;
      if (vsq) y = _mm512_sub_ps(_mm512_add_ps(x, x), _mm512_loadu_ps(vsq));
      masks[i] = _mm512_cmp_ps_mask(y, _mm512_set1_ps(thr[i]), _CMP_GT_OQ);
      if (!masks[i]) continue;
    }
    _mm512_storeu_ps(S + i * kPanel, x);
  }
}

}  // namespace

int int8_group() { return vnni() ? kMRV : kMR; }

void int8_micro(const uint8_t* q, int64_t ldq, const float* qs, const float* qt, int m, const uint8_t* tpanel,
                int64_t D, float* out, const float* thr, const float* vsq, uint32_t* masks) {
  const int64_t steps = (D + 3) / 4;
  const int8_t* panel = reinterpret_cast<const int8_t*>(tpanel);
  const float* vs = reinterpret_cast<const float*>(tpanel + int8_panel_bytes(D));
  const float* er = vs + kPanel;
  using Micro = void (*)(const uint8_t*, int64_t, const float*, const float*, const int8_t*, const float*,
                         const float*, int64_t, float*, const float*, const float*, uint32_t*);
  static constexpr Micro by_avx2[kMR] = {micro<1>, micro<2>, micro<3>, micro<4>, micro<5>};
  static constexpr Micro by_vnni[kMRV] = {micro_vnni<1>, micro_vnni<2>, micro_vnni<3>, micro_vnni<4>,
                                          micro_vnni<5>, micro_vnni<6>, micro_vnni<7>, micro_vnni<8>};
  const int i = std::max(1, std::min(m, int8_group())) - 1;
  (vnni() ? by_vnni : by_avx2)[i](q, ldq, qs, qt, panel, vs, er, steps, out, thr, vsq, masks);
}
#else
int64_t int8_panel_bytes(int64_t) { return 0; }
int64_t int8_table_bytes(int64_t) { return 0; }
int int8_group() { return 1; }
void int8_pack_rows(const float*, int64_t, int64_t, int64_t, uint8_t*, double*) {}
void int8_pack_table(const float*, int64_t, int64_t, int64_t, uint8_t*, int) {}
double int8_table_emax(const uint8_t*, int64_t, int64_t) { return 0.0; }
void int8_pack_queries(const float*, int64_t, int64_t, int64_t, uint8_t*, float*, double*, double*, float*) {}
void int8_micro(const uint8_t*, int64_t, const float*, const float*, int, const uint8_t*, int64_t, float*, const float*,
                const float*, uint32_t*) {}
#endif

}  // namespace fastrepr
