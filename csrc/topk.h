// Running top-k lists and exact search: the CPU side of fastrepr.ops.topk_search and analogy_topk.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace fastrepr {

// Scores of columns [col0, col0 + C) for Q rows, folded into per-row lists sorted by score descending
// (equal scores: lower column first). S is a [U, C] float32 tile; rows[q] = (a, b, c) rows of S:
//   mode 0 (search):  score = S[a, j]
//   mode 1 (3CosAdd): score = (S[b, j] + S[c, j] - S[a, j]) * scale[q]
//   mode 2 (3CosMul): score = ((1 + S[b, j]) / 2 * (1 + S[c, j]) / 2) / ((1 + S[a, j]) / 2 + 1e-6)
// Columns listed in excl[q, 0:E] (global ids) are skipped; NaN scores are never kept. top_v/top_i [Q, K]
// hold the lists between calls (start: -inf and distinct negative ids). Returns false if a row id is
// outside [0, U).
bool topk_merge(const float* S, int64_t U, int64_t C, const int64_t* rows, const float* scale, int mode,
                const int64_t* excl, int64_t E, int64_t col0, int64_t Q, int64_t K, float* top_v,
                int64_t* top_i, int threads);

// ---- candidate scan: the K best rows of v for each query by float32 score ----

// bfloat16 bits of a finite float, rounded to nearest even (relative error at most 2^-8).
inline uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// the float a bfloat16's bits stand for (exact)
inline float bf16_to_float(uint16_t h) {
  const uint32_t x = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// Fortran-interface sgemm with 64-bit integers (MKL's sgemm_64_, OpenBLAS's ILP64 sgemm), and a
// thread-local thread-count setter (mkl_set_num_threads_local, openblas_set_num_threads_local; returns the
// previous value). Both come from libraries already loaded in the process (see topk_blas_resolve).
using Sgemm64 = void (*)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const float*,
                         const float*, const int64_t*, const float*, const int64_t*, const float*, float*,
                         const int64_t*);
using SetThreadsLocal = int (*)(int);
// MKL's gemm_bf16bf16f32_64_: the same product from bfloat16 inputs (raw bits), float32 accumulation and output.
using GemmBf16 = void (*)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const float*,
                          const uint16_t*, const int64_t*, const uint16_t*, const int64_t*, const float*, float*,
                          const int64_t*);

struct ScanProblem {
  const float* q;  // queries [Q, D], row stride ldq
  int64_t Q, ldq;
  const float* v;  // rows [R, D], row stride ldv
  int64_t R, ldv, D;
  const float* vsq;  // [R] squared row norms: rank by 2 q.v - |v|^2 (L2); nullptr: rank by q.v
  int64_t K;         // list length, 1 <= K <= R
};

// A filter's copies and their measured errors (the int8 filter, csrc/topk_int8.cpp; the bf16 filter, MKL's
// bfloat16 product in csrc/topk_scan.cpp). The scan reports for the refinement's bound, per query, the error
// |q - q~| of its copy and the norm |q~| (both rounded up), and the largest error |v - v~| of any row's copy.
struct FilterStats {
  double* qerr;   // [Q]
  double* qnorm;  // [Q]
  double emax;
  const uint8_t* table = nullptr;  // int8 only. set: the rows' copies made beforehand (int8_pack_rows of all
                                   // R rows, 64-byte aligned); nullptr: each chunk packed as it is scanned
  const uint16_t* bf16_table = nullptr;  // bf16 (required): the rows' copies (bf16_pack_table of >= R rows)
};

struct ScanPlan {
  Sgemm64 gemm;  // nullptr (and gemm_bf16 nullptr): the built-in register-blocked kernel
  GemmBf16 gemm_bf16;  // set: tiles from bfloat16 copies (round to nearest even) of each block and chunk
  SetThreadsLocal set_threads;
  int64_t block_q, block_v;  // one tile: block_q queries x block_v rows (stays in the core's L2)
  int threads;
  bool int8 = false;  // tiles from int8 copies (a filter; int8_supported() must hold)
  FilterStats* stats = nullptr;  // a filter's (int8, or gemm_bf16 set) errors: required for both
};

// ---- the int8 filter's pieces (csrc/topk_int8.cpp; x86 with AVX2 only) ----
bool int8_supported();
// the micro kernel's instruction set: "avx512-vnni" (where topk_isa() is avx512 and the CPU has VNNI),
// "avx2", or "" (not supported)
const char* int8_isa();
// bytes of one panel's integers, 16 rows of D columns ([Dp/4][16 rows][4 bytes], Dp = D rounded up to 4)
int64_t int8_panel_bytes(int64_t D);
// bytes of one panel of a table: its integers, then 16 scales and 16 errors |v - ṽ| (float32, rounded up); a
// multiple of 64
int64_t int8_table_bytes(int64_t D);
// rows v [n, D] (stride ldv) -> ceil(n/16) table panels (int8_table_bytes each; rows past n zero);
// emax = max(emax, the row errors)
void int8_pack_rows(const float* v, int64_t ldv, int64_t n, int64_t D, uint8_t* table, double* emax);
// the same for a whole table, in parallel (threads as everywhere: 0 = OpenMP's default)
void int8_pack_table(const float* v, int64_t ldv, int64_t n, int64_t D, uint8_t* table, int threads);
// the largest error of rows [0, n) of a table
double int8_table_emax(const uint8_t* table, int64_t n, int64_t D);
// bytes of one packed query: Dp 8-bit integers (zero-padded), then 128·sum_d q'_d as an int32
int64_t int8_query_bytes(int64_t D);
// queries x [n, D] (stride ldq) -> rows of int8_query_bytes(D) bytes, scales, errors |q - q̃| and norms |q̃|
// (rounded up; norm32: the same as float32)
void int8_pack_queries(const float* x, int64_t ldq, int64_t n, int64_t D, uint8_t* out, float* scale, double* err,
                       double* norm, float* norm32);
// queries per micro kernel (AVX2 5, VNNI 8; at most kInt8MaxGroup)
constexpr int kInt8MaxGroup = 8;
int int8_group();
// out [m][16] = (qs_i·vs_j)·(q'_i . v'_j) + qt_i·er_j for m <= int8_group() packed queries q (row stride
// ldq; scales qs, norms qt) and one table panel of 16 rows (32-byte aligned). thr [m] (or nullptr: every
// score stored): row i is stored only when masks[i], its lanes whose score (vsq [16] given: 2 score - vsq)
// exceeds thr[i], is not zero.
void int8_micro(const uint8_t* q, int64_t ldq, const float* qs, const float* qt, int m, const uint8_t* panel,
                int64_t D, float* out, const float* thr, const float* vsq, uint32_t* masks);

// ---- the bf16 filter's table (csrc/topk_scan.cpp): made once per search (or kept), read by every scan ----
// columns of one table row: D bfloat16 bits (round to nearest even, as vcvtne2ps2bf16: denormals to zero on
// AVX512-BF16), then the row's error |v - v~| as a float32 (two uint16, rounded up)
inline int64_t bf16_table_cols(int64_t D) { return D + 2; }
void bf16_pack_table(const float* v, int64_t ldv, int64_t n, int64_t D, uint16_t* table, int threads);
// the largest error of rows [0, n) of a table
double bf16_table_emax(const uint16_t* table, int64_t n, int64_t D);

// Looks up an ILP64 sgemm (and a thread-local thread-count setter) in a library already loaded in this
// process (dlopen with RTLD_NOLOAD: nothing new is loaded) and checks it on a small strided product against a
// plain loop. Returns a handle >= 1, or 0 with the reason in `why`. topk_blas_lookup: false for a bad handle.
// bf16: look up the bfloat16 product (gemm_bf16bf16f32_64_) instead, checked against the bf16-rounded inputs.
int topk_blas_register(const std::string& library, bool bf16, std::string& why);
bool topk_blas_lookup(int handle, ScanPlan& plan);

// out_v/out_i [Q, K]: per query the K best rows by the float32 ranking score, sorted (score descending, lower
// row first). Every row not returned scores at most out_v[q, K-1] (the completeness the refinement needs). The
// int8 filter at K >= 128 may return fewer rows: the places after them hold row -1 and the seed of that query's
// list, which every row not returned scores at most (csrc/topk_scan.cpp, int8_seeds).
void topk_scan(const ScanProblem& p, const ScanPlan& plan, float* out_v, int64_t* out_i);

// The instruction set the built-in kernel runs with here ("avx512", "avx2" or "generic"; FASTREPR_TOPK_ISA
// may ask for a lower one).
const char* topk_isa();

// ---- refinement: exact (float64) scores of the candidates, and a certificate that nothing was missed ----

struct RefineProblem {
  const double* x;  // queries [Q, D] in float64 (the exact query: analogies form theirs in float64)
  int64_t Q, D;
  const float* v;  // rows [R, D], row stride ldv
  int64_t R, ldv;
  const int64_t* cand;  // [Q, Kc] candidate rows (-1: none); Kc >= R means every row is a candidate
  int64_t Kc;
  const double* scale;   // [Q] ip: the approximate scores estimate scale[q]·(x.v); nullptr: 1
  const double* approx;  // [Q, Kc] approximate scores (ip) or distances (l2) of the candidates, best first
  const double* bound;   // [Q] bound on |approximate - exact| over all rows
  const int64_t* excl;  // [Q, E] rows never returned (-1: unused)
  int64_t E;
  bool l2;
  int64_t k;
};

// out_v/out_i [Q, k]: the k best non-excluded candidates by exact score (ip: x.v descending, reported as
// scale·(x.v); l2: |x - v|^2 ascending; equal: lower row first), padded with (-inf or +inf, -1). ok[q] = 1
// when no row outside the candidates can belong there: worst + bound < scale·(k-th x.v), worst the last
// approximate score (l2: worst - bound > k-th distance). Only candidates within 2·bound of the k-th
// approximate score are scored in float64: any lower one is beaten exactly by each of the k above it.
// A separate scale keeps rows tied in x.v tied (analogies rank by the unnormalized sum).
// Returns false if a candidate is outside [-1, R).
bool topk_refine(const RefineProblem& p, float* out_v, int64_t* out_i, uint8_t* ok, int threads);

}  // namespace fastrepr
