#include "word2vec.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

// The hot loop is compiled once per instruction set and picked at run time (no -march=native in the build):
// the body is force-inlined into wrappers that carry GCC/Clang target attributes, so the loops vectorize to
// AVX2+FMA (preferred), AVX-512 or baseline SSE2. FASTREPR_W2V_ISA=generic|avx2|avx512 overrides the choice.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTREPR_W2V_X86 1
#endif
#define W2V_INLINE inline __attribute__((always_inline))
#ifndef FASTREPR_W2V_U512
#define FASTREPR_W2V_U512 2
#endif
#pragma GCC diagnostic ignored "-Wpsabi"  // v16 values never cross a non-inlined call

namespace fastrepr {

namespace {

// word2vec.c's sigmoid table: 1024 steps over [-6, 6]; outside, sigmoid saturates to 0 or 1 (the gradient
// word2vec.c's negative sampling uses there; gensim skips such scores). -log sigmoid gets its own table for
// the reported loss.
constexpr int kTable = 1024;
constexpr float kMaxExp = 6.0f;

struct SigmoidTables {
  float sig[kTable + 1];
  float nls[kTable + 1];  // -log sigmoid
  SigmoidTables() {
    for (int i = 0; i <= kTable; ++i) {
      const double x = (2.0 * i / kTable - 1.0) * kMaxExp;
      sig[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      nls[i] = static_cast<float>(std::log1p(std::exp(-x)));
    }
  }
};
const SigmoidTables kTables;

W2V_INLINE int table_index(float f) { return static_cast<int>((f + kMaxExp) * (kTable / (2 * kMaxExp))); }
// Linear interpolation in the table: error below 2e-6 (word2vec.c's nearest entry errs by up to 3e-3).
W2V_INLINE float fast_sigmoid(float f) {
  if (f >= kMaxExp) return 1.0f;
  if (f <= -kMaxExp) return 0.0f;
  const float x = (f + kMaxExp) * (kTable / (2 * kMaxExp));
  const int i = static_cast<int>(x);
  return kTables.sig[i] + (x - static_cast<float>(i)) * (kTables.sig[i + 1] - kTables.sig[i]);
}
W2V_INLINE float neg_log_sigmoid(float f) {
  if (f >= kMaxExp) return 0.0f;
  if (f <= -kMaxExp) return -f;
  return kTables.nls[table_index(f)];
}

// splitmix64 (Steele et al. 2014): one add and two multiplies per 64 random bits.
struct Rng {
  uint64_t s;
  W2V_INLINE uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
};

// Subsampling: keep token w when a uniform uint32 is <= keep[w] (keep == nullptr keeps all). Returns the count.
W2V_INLINE int64_t subsample(const int32_t* raw, int64_t n, const uint32_t* keep, Rng& rng, int32_t* out) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t w = raw[i];
    if (keep && static_cast<uint32_t>(rng.next()) > keep[w]) continue;
    out[kept++] = w;
  }
  return kept;
}

// One draw from the alias table: the high 32 bits pick a bucket (multiply-shift, no modulo bias beyond
// 2^-32), the low 32 bits decide between the bucket and its alias.
W2V_INLINE int32_t draw_noise(Rng& rng, const uint32_t* prob, const int32_t* alias, uint64_t V) {
  const uint64_t x = rng.next();
  const uint32_t bucket = static_cast<uint32_t>(((x >> 32) * V) >> 32);
  return static_cast<uint32_t>(x) < prob[bucket] ? static_cast<int32_t>(bucket) : alias[bucket];
}

// Small dense kernels on rows of D floats, written with GCC/Clang vector extensions. V is the native vector
// of the instruction set the caller is compiled for (4 floats: SSE2, 8: AVX2, 16: AVX-512; a wider generic
// vector would be split by the compiler through memory) and U vectors make one chunk of C = U·lanes floats.
// The blocking keeps R·U accumulators in registers and gives as many independent FMA chains (an FMA has a
// latency of about 4 cycles; one long chain would leave the units idle). The last D % C columns run scalar.
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

// out[r] = x . y[r]: full chunks, then 8- and 4-wide pieces (so D = 100 leaves no scalar work), then scalar.
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
W2V_INLINE void score_matrix(float* const* x, int m, float* const* y, int n, int64_t D, float* S) {
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
  // One destination row (CBOW's h and error) gets a twice longer chunk: twice the independent chains.
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

// CBOW's output pass, one read of each output row: e = sum_k g[k] out[k] (values before the update) and
// out[k] += gh[k] h, over columns [d, D) in chunks of U vectors V. The rows out[k] are distinct.
template <typename V, int U>
W2V_INLINE int64_t outputs_part(float* const* out, const float* g, const float* gh, int n, const float* h, float* e,
                                int64_t d, int64_t D) {
  constexpr int L = Chunk<V, U>::lanes, C = Chunk<V, U>::size;
  for (; d + C <= D; d += C) {
    V acc[U], hv[U];
    for (int u = 0; u < U; ++u) {
      acc[u] = V{};
      hv[u] = vload<V>(h + d + u * L);
    }
    for (int k = 0; k < n; ++k)
      for (int u = 0; u < U; ++u) {
        const V o = vload<V>(out[k] + d + u * L);
        acc[u] += g[k] * o;
        vstore<V>(out[k] + d + u * L, o + gh[k] * hv[u]);
      }
    for (int u = 0; u < U; ++u) vstore<V>(e + d + u * L, acc[u]);
  }
  return d;
}

template <typename V, int U>
W2V_INLINE void update_outputs(float* const* out, const float* g, const float* gh, int n, const float* h, float* e,
                               int64_t D) {
  int64_t d = outputs_part<V, 2 * U>(out, g, gh, n, h, e, 0, D);
  d = outputs_part<V, U>(out, g, gh, n, h, e, d, D);
  if (Chunk<V, 1>::lanes > 8) d = outputs_part<v8, 1>(out, g, gh, n, h, e, d, D);
  if (Chunk<V, 1>::lanes > 4) d = outputs_part<v4, 1>(out, g, gh, n, h, e, d, D);
  for (; d < D; ++d) {
    float acc = 0.0f;
    for (int k = 0; k < n; ++k) {
      acc += g[k] * out[k][d];
      out[k][d] += gh[k] * h[d];
    }
    e[d] = acc;
  }
}

W2V_INLINE void axpy(float a, const float* __restrict x, float* __restrict y, int64_t D) {
  for (int64_t d = 0; d < D; ++d) y[d] += a * x[d];
}

struct Scratch {
  std::vector<int32_t> sen;
  std::vector<float*> in, out, tmp_rows;
  std::vector<float> label, mult, g, tmp, h, neu1e;
};

struct Shared {
  const Word2VecParams& p;
  const Word2VecData& d;
  std::atomic<int64_t> words{0};
  double total = 1.0;                  // epochs x N
  std::vector<int64_t> chunks;         // [n + 1] sentence ranges of about chunk_words tokens each
  std::atomic<int64_t> next_chunk{0};  // chunks are handed out in order, epoch after epoch
  std::vector<Scratch> scratch;
};

W2V_INLINE void relaxed_store(double* p, double v) { __atomic_store(p, &v, __ATOMIC_RELAXED); }

// Skip-gram, one window: S = In·Out^T [m, n]; G = alpha (label - sigmoid(S)); In += G·Out; Out += G^T·In,
// both from the values read before the update (tmp holds G·Out until Out has been updated).
template <typename V, int U>
W2V_INLINE void window_update(float* const* in, int m, float* const* out, const float* label, const float* mult,
                              int n, float alpha, int64_t D, float* G, float* const* tmp, double& loss) {
  score_matrix<V, U>(in, m, out, n, D, G);
  for (int a = 0; a < m; ++a)
    for (int k = 0; k < n; ++k) {
      const float f = G[a * n + k];
      G[a * n + k] = mult[k] * (label[k] - fast_sigmoid(f)) * alpha;
      loss += mult[k] * neg_log_sigmoid(label[k] > 0.5f ? f : -f);
    }
  combine_rows<V, U>(tmp, m, false, G, n, 1, out, n, D);   // tmp[a] = sum_k G[a, k] out[k]
  combine_rows<V, U>(out, n, true, G, 1, n, in, m, D);     // out[k] += sum_a G[a, k] in[a]
  for (int a = 0; a < m; ++a) axpy(1.0f, tmp[a], in[a], D);
}

// CBOW, one center: h = sum (or mean) of the m context rows predicts the center. All scores are read before
// any output row changes (word2vec.c updates output k before scoring k + 1; the two differ only when a
// negative repeats within one center).
template <typename V, int U>
W2V_INLINE void cbow_update(float* const* in, int m, float* const* out, const float* label, const float* mult, int n,
                            float alpha, int64_t D, bool mean, float* h, float* neu1e, float* g, double& loss) {
  const float inv = 1.0f / static_cast<float>(m);
  float* hp[1] = {h};
  std::fill(g, g + m, mean ? inv : 1.0f);
  combine_rows<V, U>(hp, 1, false, g, 0, 1, in, m, D);     // h = (1/m) sum_a in[a]
  score_matrix<V, U>(hp, 1, out, n, D, g);
  for (int k = 0; k < n; ++k) {
    const float f = g[k];
    g[k] = mult[k] * (label[k] - fast_sigmoid(f)) * alpha * (mean ? 1.0f : inv);
    loss += mult[k] * neg_log_sigmoid(label[k] > 0.5f ? f : -f);
  }
  float* gh = g + n;  // the output rows move by the undivided g (the sum variant divided only the error)
  for (int k = 0; k < n; ++k) gh[k] = mean ? g[k] : g[k] * static_cast<float>(m);
  update_outputs<V, U>(out, g, gh, n, h, neu1e, D);     // neu1e = sum_k g[k] out[k]; out[k] += gh[k] h
  for (int a = 0; a < m; ++a) axpy(1.0f, neu1e, in[a], D);
}

template <typename V, int U>
W2V_INLINE void worker_body(Shared& sh, int t) {
  const Word2VecParams& p = sh.p;
  const Word2VecData& d = sh.d;
  Scratch& sc = sh.scratch[t];
  const int64_t D = p.D;
  const int W = p.window;
  const uint64_t vocab = static_cast<uint64_t>(p.V);
  Rng rng{p.seed * 0x2545F4914F6CDD1DULL + static_cast<uint64_t>(t) * 0x9E3779B97F4A7C15ULL + 1};
  int64_t done = 0, reported = 0;
  double loss = 0.0, terms = 0.0;
  float alpha = static_cast<float>(p.alpha);
  const int64_t n_chunks = static_cast<int64_t>(sh.chunks.size()) - 1;
  for (;;) {
    const int64_t c = sh.next_chunk.fetch_add(1, std::memory_order_relaxed);
    if (c >= n_chunks * p.epochs) break;
    const int64_t first = sh.chunks[c % n_chunks], last = sh.chunks[c % n_chunks + 1];
    for (int64_t s = first; s < last; ++s) {
      if (d.stop && __atomic_load_n(d.stop, __ATOMIC_RELAXED)) return;
      const int32_t* raw = d.tokens + d.offsets[s];
      const int64_t nraw = d.offsets[s + 1] - d.offsets[s];
      const int64_t n = subsample(raw, nraw, d.keep, rng, sc.sen.data());
      for (int64_t i = 0; i < n; ++i) {
        const int32_t w = sc.sen[i];
        const int r = p.shrink_windows ? static_cast<int>(rng.next() % static_cast<uint64_t>(W)) : 0;
        const int64_t lo = std::max<int64_t>(0, i - W + r), hi = std::min<int64_t>(n, i + W + 1 - r);
        int m = 0;
        for (int64_t j = lo; j < hi; ++j)
          if (j != i) sc.in[m++] = d.syn0 + static_cast<int64_t>(sc.sen[j]) * D;
        if (m == 0) continue;
        int no = 0;
        if (p.hs) {
          const int32_t* pt = d.points + static_cast<int64_t>(w) * d.L;
          const uint8_t* cd = d.codes + static_cast<int64_t>(w) * d.L;
          for (int k = 0; k < d.lengths[w]; ++k) {
            sc.out[no] = d.syn1 + static_cast<int64_t>(pt[k]) * D;
            sc.mult[no] = 1.0f;
            sc.label[no++] = cd[k] ? 0.0f : 1.0f;
          }
        }
        if (p.negative) {
          const int first = no;
          sc.out[no] = d.syn1neg + static_cast<int64_t>(w) * D;
          sc.mult[no] = 1.0f;
          sc.label[no++] = 1.0f;
          for (int k = 0; k < p.negative; ++k) {
            const int32_t nw = draw_noise(rng, d.noise_prob, d.noise_alias, vocab);
            if (nw == w) continue;  // as word2vec.c: the center is never its own negative
            float* row = d.syn1neg + static_cast<int64_t>(nw) * D;
            // A repeated negative becomes one output row of weight 2, 3, ...: the window update writes each
            // output row once, so two copies of a row would keep only one of their updates.
            int dup = first + 1;
            while (dup < no && sc.out[dup] != row) ++dup;
            if (dup < no) {
              sc.mult[dup] += 1.0f;
              continue;
            }
            sc.out[no] = row;
            sc.mult[no] = 1.0f;
            sc.label[no++] = 0.0f;
          }
        }
        if (no == 0) continue;
        if (p.sg)
          window_update<V, U>(sc.in.data(), m, sc.out.data(), sc.label.data(), sc.mult.data(), no, alpha, D,
                              sc.g.data(), sc.tmp_rows.data(), loss);
        else
          cbow_update<V, U>(sc.in.data(), m, sc.out.data(), sc.label.data(), sc.mult.data(), no, alpha, D,
                            p.cbow_mean != 0, sc.h.data(), sc.neu1e.data(), sc.g.data(), loss);
        terms += static_cast<double>(p.sg ? m * no : no);
      }
      done += nraw;
      if (done - reported >= 10000 || s + 1 == last) {
        const int64_t global = sh.words.fetch_add(done - reported, std::memory_order_relaxed) + (done - reported);
        reported = done;
        const double a = p.alpha - (p.alpha - p.min_alpha) * static_cast<double>(global) / sh.total;
        alpha = static_cast<float>(std::max(a, p.min_alpha));
        if (d.progress) {
          relaxed_store(d.progress + 3 * t, static_cast<double>(done));
          relaxed_store(d.progress + 3 * t + 1, loss);
          relaxed_store(d.progress + 3 * t + 2, terms);
        }
      }
    }
  }
}

void worker_generic(Shared& sh, int t) { worker_body<v4, 2>(sh, t); }
#ifdef FASTREPR_W2V_X86
__attribute__((target("avx2,fma"))) void worker_avx2(Shared& sh, int t) { worker_body<v8, 2>(sh, t); }
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) void worker_avx512(Shared& sh, int t) {
  worker_body<v16, FASTREPR_W2V_U512>(sh, t);
}
#endif

using Worker = void (*)(Shared&, int);

std::string detect_isa() {
  std::string want;
  if (const char* env = std::getenv("FASTREPR_W2V_ISA")) want = env;
#ifdef FASTREPR_W2V_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // AVX2 first: on the Xeon this was tuned on (2 cores, 2026), the AVX-512 build ran 10-30% slower (zmm
  // throttling, and D = 100 fills 16-float chunks less well).
  if (want == "generic") return "generic";
  if (want == "avx512" && avx512) return "avx512";
  if (avx2) return "avx2";
  if (avx512) return "avx512";
#endif
  return "generic";
}

Worker pick_worker(const std::string& isa) {
#ifdef FASTREPR_W2V_X86
  if (isa == "avx512") return worker_avx512;
  if (isa == "avx2") return worker_avx2;
#endif
  (void)isa;
  return worker_generic;
}

}  // namespace

int64_t word2vec_subsample(const int32_t* tokens, int64_t n, const uint32_t* keep, uint64_t seed, int32_t* out) {
  Rng rng{seed};
  return subsample(tokens, n, keep, rng, out);
}

void word2vec_draw_noise(const uint32_t* prob, const int32_t* alias, int64_t V, int64_t n, uint64_t seed,
                         int32_t* out) {
  Rng rng{seed};
  for (int64_t i = 0; i < n; ++i) out[i] = draw_noise(rng, prob, alias, static_cast<uint64_t>(V));
}

const char* word2vec_isa() {
  static std::string isa;
  isa = detect_isa();
  return isa.c_str();
}

void word2vec_train(const Word2VecParams& p, const Word2VecData& d) {
  Shared sh{p, d};
  const int T = std::max(1, p.threads);
  sh.total = std::max(1.0, static_cast<double>(p.epochs) * static_cast<double>(d.N));
  // Chunks of whole sentences of about N / (8 T) tokens (1000 to 10000), taken by the threads from a shared
  // counter: a thread slowed down by another process on its core leaves its share to the others, where fixed
  // shards would make every run wait for the slowest thread.
  const int64_t chunk_words = std::min<int64_t>(10000, std::max<int64_t>(1000, d.N / (8 * T)));
  sh.chunks.push_back(0);
  for (int64_t s = 0; s < d.S; ++s)
    if (d.offsets[s + 1] - d.offsets[sh.chunks.back()] >= chunk_words || s + 1 == d.S) sh.chunks.push_back(s + 1);
  if (d.S == 0) sh.chunks.push_back(0);
  int64_t longest = 0;
  for (int64_t s = 0; s < d.S; ++s) longest = std::max(longest, d.offsets[s + 1] - d.offsets[s]);
  const int max_out = (p.hs ? static_cast<int>(d.L) : 0) + (p.negative ? p.negative + 1 : 0);
  const int max_in = 2 * p.window;
  sh.scratch.resize(T);
  for (Scratch& sc : sh.scratch) {  // allocated here, so that the threads never throw
    sc.sen.resize(std::max<int64_t>(longest, 1));
    sc.in.resize(max_in);
    sc.out.resize(std::max(max_out, 1));
    sc.label.resize(std::max(max_out, 1));
    sc.mult.resize(std::max(max_out, 1));
    sc.g.resize(static_cast<size_t>(std::max(max_in, 2)) * std::max(max_out, 1) + max_in);  // G, or CBOW's g and gh
    sc.tmp.resize(static_cast<size_t>(max_in) * p.D);
    sc.tmp_rows.resize(max_in);
    for (int a = 0; a < max_in; ++a) sc.tmp_rows[a] = sc.tmp.data() + static_cast<size_t>(a) * p.D;
    sc.h.resize(p.D);
    sc.neu1e.resize(p.D);
  }
  const Worker work = pick_worker(detect_isa());
  if (T == 1) {
    work(sh, 0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(T);
  for (int t = 0; t < T; ++t) pool.emplace_back(work, std::ref(sh), t);
  for (std::thread& th : pool) th.join();
}

}  // namespace fastrepr
