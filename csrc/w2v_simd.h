// Small dense kernels on rows of D floats for the word2vec trainer (csrc/word2vec.cpp), written with GCC/Clang
// vector extensions and force-inlined into the trainer's per-instruction-set workers (so they compile to SSE2,
// AVX2+FMA or AVX-512 there). Include from word2vec.cpp only.
//
// V is the native vector of the instruction set the caller is compiled for (4 floats: SSE2, 8: AVX2, 16:
// AVX-512; a wider generic vector would be split by the compiler through memory) and U vectors make one chunk
// of C = U·lanes floats. The blocking keeps R·U accumulators in registers and gives as many independent FMA
// chains (an FMA has a latency of about 4 cycles; one long chain would leave the units idle). The columns
// after the last full chunk run in 8- and 4-wide pieces (so D = 100 leaves no scalar work), then scalar.
#pragma once
#include <cstdint>
#include <cstring>

#define W2V_INLINE inline __attribute__((always_inline))
// A lambda is a function of its own, which would not inherit the target attributes of the worker it sits in
// (its vector code would be compiled for baseline SSE2): lambdas in the hot loop are force-inlined too.
#define W2V_LAMBDA __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"  // v16 values never cross a non-inlined call

namespace fastrepr {
namespace w2v {

typedef float v4 __attribute__((vector_size(16)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

template <typename V>
W2V_INLINE V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
W2V_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }

template <typename V, int U>
struct Chunk {
  static constexpr int lanes = sizeof(V) / sizeof(float);
  static constexpr int size = lanes * U;
};

// Touch every 64-byte line of a row of D floats, so that its cache misses overlap the current pair's work.
W2V_INLINE void prefetch_row(const float* p, int64_t D) {
  for (int64_t d = 0; d < D; d += 16) __builtin_prefetch(p + d, 1, 3);
}

// out[r] += x . y[r] over columns [d, D) in chunks of U vectors V, for r < R (R <= 4): x is loaded once per
// chunk for R rows of y. Returns the first column not done (fewer than a chunk remain).
template <typename V, int U, int R>
W2V_INLINE int64_t dots_part(const float* x, const float* const* y, int64_t d, int64_t D, float* out) {
  constexpr int L = Chunk<V, U>::lanes, C = Chunk<V, U>::size;
  if (d + C > D) return d;
  V acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u) acc[r][u] = V{};
  for (; d + C <= D; d += C)
    for (int u = 0; u < U; ++u) {
      const V xv = vload<V>(x + d + u * L);
      for (int r = 0; r < R; ++r) acc[r][u] += xv * vload<V>(y[r] + d + u * L);
    }
  for (int r = 0; r < R; ++r) {
    V t = acc[r][0];
    for (int u = 1; u < U; ++u) t += acc[r][u];
    for (int i = 0; i < L; ++i) out[r] += t[i];
  }
  return d;
}

// out[r] = x . y[r].
template <typename V, int U, int R>
W2V_INLINE void dots(const float* x, const float* const* y, int64_t D, float* out) {
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
  int64_t d = dots_part<V, U, R>(x, y, 0, D, out);
  if (Chunk<V, 1>::lanes > 8) d = dots_part<v8, 1, R>(x, y, d, D, out);
  if (Chunk<V, 1>::lanes > 4) d = dots_part<v4, 1, R>(x, y, d, D, out);
  for (; d < D; ++d)
    for (int r = 0; r < R; ++r) out[r] += x[d] * y[r][d];
}

// S[a * n + k] = x[a] . y[k] for a < m, k < n.
template <typename V, int U>
W2V_INLINE void score_matrix(const float* const* x, int m, const float* const* y, int n, int64_t D, float* S) {
  for (int a = 0; a < m; ++a) {
    int k = 0;
    for (; k + 4 <= n; k += 4) dots<V, U, 4>(x[a], y + k, D, S + a * n + k);
    switch (n - k) {
      case 3: dots<V, U, 3>(x[a], y + k, D, S + a * n + k); break;
      case 2: dots<V, U, 2>(x[a], y + k, D, S + a * n + k); break;
      case 1: dots<V, U, 1>(x[a], y + k, D, S + a * n + k); break;
      default: break;
    }
  }
}

// dst[r] (+)= sum_j coef[r * rs + j * cs] * src[j] over columns [d, D) in chunks of U vectors V, for r < R
// (R <= 4), j < n: an [R, n] x [n, D] product whose accumulators stay in registers while the n source rows
// stream past (each loaded once per chunk). Returns the first column not done.
template <typename V, int U, int R>
W2V_INLINE int64_t combine_part(float* const* dst, bool accumulate, const float* coef, int64_t rs, int64_t cs,
                                float* const* src, int n, int64_t d, int64_t D) {
  constexpr int L = Chunk<V, U>::lanes, C = Chunk<V, U>::size;
  for (; d + C <= D; d += C) {
    V acc[R][U];
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < U; ++u) acc[r][u] = accumulate ? vload<V>(dst[r] + d + u * L) : V{};
    for (int j = 0; j < n; ++j)
      for (int u = 0; u < U; ++u) {
        const V sj = vload<V>(src[j] + d + u * L);
        for (int r = 0; r < R; ++r) acc[r][u] += coef[r * rs + j * cs] * sj;
      }
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < U; ++u) vstore<V>(dst[r] + d + u * L, acc[r][u]);
  }
  return d;
}

template <typename V, int U, int R>
W2V_INLINE void combine(float* const* dst, bool accumulate, const float* coef, int64_t rs, int64_t cs,
                        float* const* src, int n, int64_t D) {
  // One destination row (CBOW's h) gets a twice longer chunk: twice the independent chains.
  int64_t d = combine_part<V, (R == 1 ? 2 * U : U), R>(dst, accumulate, coef, rs, cs, src, n, 0, D);
  if (R == 1) d = combine_part<V, U, R>(dst, accumulate, coef, rs, cs, src, n, d, D);
  if (Chunk<V, 1>::lanes > 8) d = combine_part<v8, 1, R>(dst, accumulate, coef, rs, cs, src, n, d, D);
  if (Chunk<V, 1>::lanes > 4) d = combine_part<v4, 1, R>(dst, accumulate, coef, rs, cs, src, n, d, D);
  for (; d < D; ++d)
    for (int r = 0; r < R; ++r) {
      float v = accumulate ? dst[r][d] : 0.0f;
      for (int j = 0; j < n; ++j) v += coef[r * rs + j * cs] * src[j][d];
      dst[r][d] = v;
    }
}

template <typename V, int U>
W2V_INLINE void combine_rows(float* const* dst, int rows, bool accumulate, const float* coef, int64_t rs,
                             int64_t cs, float* const* src, int n, int64_t D) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) combine<V, U, 4>(dst + r, accumulate, coef + r * rs, rs, cs, src, n, D);
  switch (rows - r) {
    case 3: combine<V, U, 3>(dst + r, accumulate, coef + r * rs, rs, cs, src, n, D); break;
    case 2: combine<V, U, 2>(dst + r, accumulate, coef + r * rs, rs, cs, src, n, D); break;
    case 1: combine<V, U, 1>(dst + r, accumulate, coef + r * rs, rs, cs, src, n, D); break;
    default: break;
  }
}

// The output pass of one prediction from the input row x: e = sum_k g[k] out[k] and out[k] += gx[k] x, both
// in one read of each output row, over columns [d, D) in chunks of U vectors V. Then, with kAddToX, x += e
// (skip-gram: the context row takes its error at the end of the pair) instead of storing e.
// Column by column the k are processed in order, so a row listed twice (a repeated negative) sees its first
// update before its second, exactly as a sequential loop over k would; only the score of the second copy must
// be taken after the first update, which the caller handles. x must not alias any out[k] (another table).
template <typename V, int U, bool kAddToX>
W2V_INLINE int64_t outputs_part(float* const* out, const float* g, const float* gx, int n, float* x, float* e,
                                int64_t d, int64_t D) {
  constexpr int L = Chunk<V, U>::lanes, C = Chunk<V, U>::size;
  for (; d + C <= D; d += C) {
    V acc[U], xv[U];
    for (int u = 0; u < U; ++u) {
      acc[u] = V{};
      xv[u] = vload<V>(x + d + u * L);
    }
    for (int k = 0; k < n; ++k)
      for (int u = 0; u < U; ++u) {
        const V o = vload<V>(out[k] + d + u * L);
        acc[u] += g[k] * o;
        vstore<V>(out[k] + d + u * L, o + gx[k] * xv[u]);
      }
    for (int u = 0; u < U; ++u) {
      if (kAddToX) vstore<V>(x + d + u * L, xv[u] + acc[u]);
      else vstore<V>(e + d + u * L, acc[u]);
    }
  }
  return d;
}

template <typename V, int U, bool kAddToX>
W2V_INLINE void update_outputs(float* const* out, const float* g, const float* gx, int n, float* x, float* e,
                               int64_t D) {
  int64_t d = outputs_part<V, 2 * U, kAddToX>(out, g, gx, n, x, e, 0, D);
  d = outputs_part<V, U, kAddToX>(out, g, gx, n, x, e, d, D);
  if (Chunk<V, 1>::lanes > 8) d = outputs_part<v8, 1, kAddToX>(out, g, gx, n, x, e, d, D);
  if (Chunk<V, 1>::lanes > 4) d = outputs_part<v4, 1, kAddToX>(out, g, gx, n, x, e, d, D);
  for (; d < D; ++d) {
    float acc = 0.0f;
    const float xd = x[d];
    for (int k = 0; k < n; ++k) {
      acc += g[k] * out[k][d];
      out[k][d] += gx[k] * xd;
    }
    if (kAddToX) x[d] = xd + acc;
    else e[d] = acc;
  }
}

// y += a x
template <typename V>
W2V_INLINE void axpy(float a, const float* x, float* y, int64_t D) {
  constexpr int L = Chunk<V, 1>::lanes;
  int64_t d = 0;
  for (; d + L <= D; d += L) vstore<V>(y + d, vload<V>(y + d) + a * vload<V>(x + d));
  if (L > 4)
    for (; d + 4 <= D; d += 4) vstore<v4>(y + d, vload<v4>(y + d) + a * vload<v4>(x + d));
  for (; d < D; ++d) y[d] += a * x[d];
}

}  // namespace w2v
}  // namespace fastrepr
