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

#include "w2v_random.h"
#include "w2v_simd.h"

// The hot loop is compiled once per instruction set and picked at run time (no -march=native in the build):
// the body is force-inlined into wrappers that carry GCC/Clang target attributes, so the loops vectorize to
// AVX2+FMA (preferred), AVX-512 or baseline SSE2. FASTREPR_W2V_ISA=generic|avx2|avx512 overrides the choice.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTREPR_W2V_X86 1
#endif
#ifndef FASTREPR_W2V_U512
#define FASTREPR_W2V_U512 2
#endif

namespace fastrepr {

namespace {

using namespace w2v;

// The sigmoid inside (-6, 6) (word2vec's MAX_EXP), two ways; outside, the saturation rule decides (step).
// * The references' table (default): word2vec.c and gensim read entry (int)((f + 6) · (1000 / 6 / 2)) of a
//   1000-entry table over [-6, 6). 1000 / 6 / 2 is integer division there (83, not 83.33), so the lookup is
//   sigmoid(0.012 · floor(83 (f + 6)) - 6): about sigmoid(0.996 f - 0.03), biased towards label 1 and
//   piecewise constant. It is part of their numbers (on the WordNet + FOLDOC benchmark, reading it instead of
//   the true sigmoid moved skip-gram's WordSim353 by +0.01), so it is reproduced to the bit: entries computed
//   in float as gensim's init() does, the index in double as its generated C does.
// * Interpolated (smooth = true): 1024 steps, linear interpolation, error below 2e-6 against the true sigmoid.
// -log sigmoid gets a table of its own for the reported loss. Every lookup is behind a test that a NaN
// fails, and the index is clamped: no score can read outside a table.
constexpr int kTable = 1024;
constexpr int kRefTable = 1000;
constexpr float kMaxExp = 6.0f;

struct SigmoidTables {
  float sig[kTable + 1];
  float nls[kTable + 1];  // -log sigmoid
  float ref[kRefTable];   // word2vec.c's / gensim's expTable
  SigmoidTables() {
    for (int i = 0; i <= kTable; ++i) {
      const double x = (2.0 * i / kTable - 1.0) * kMaxExp;
      sig[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      nls[i] = static_cast<float>(std::log1p(std::exp(-x)));
    }
    for (int i = 0; i < kRefTable; ++i) {
      const float x = (static_cast<float>(i) / static_cast<float>(kRefTable) * 2.0f - 1.0f) * kMaxExp;
      const float e = static_cast<float>(std::exp(static_cast<double>(x)));
      ref[i] = e / (e + 1.0f);
    }
  }
};
const SigmoidTables kTables;

W2V_INLINE bool in_table(float f) { return f > -kMaxExp && f < kMaxExp; }  // false for NaN
// For f in (-6, 6) only. (f + 6) can round up to 12, hence the clamps.
W2V_INLINE float table_sigmoid(float f, bool smooth) {
  if (!smooth) {
    const int i = static_cast<int>((static_cast<double>(f) + 6.0) * (kRefTable / 6 / 2));
    return kTables.ref[std::min(i, kRefTable - 1)];
  }
  const float x = (f + kMaxExp) * (kTable / (2 * kMaxExp));
  const int i = std::min(static_cast<int>(x), kTable - 1);
  return kTables.sig[i] + (x - static_cast<float>(i)) * (kTables.sig[i + 1] - kTables.sig[i]);
}
// -log sigmoid(f): the table inside (-6, 6), the exact formula outside; NaN stays NaN.
W2V_INLINE float neg_log_sigmoid(float f) {
  if (in_table(f))
    return kTables.nls[std::min(static_cast<int>((f + kMaxExp) * (kTable / (2 * kMaxExp))), kTable - 1)];
  return f >= 0.0f ? std::log1p(std::exp(-f)) : -f + std::log1p(std::exp(f));
}
W2V_INLINE bool finite(float f) { return std::fabs(f) <= 3.4028235e38f; }
constexpr double kDivergedLoss = 1e3;

// The noise words a sentence needs, drawn ahead of use so that the next pair's rows can be prefetched. Nothing
// else draws while a sentence trains, so drawing ahead (never past the sentence's total) keeps the order.
struct NegStream {
  std::vector<int32_t> buf;
  int64_t head = 0, tail = 0, remaining = 0;
  W2V_INLINE void start(int64_t need) { head = tail = 0, remaining = need; }
  W2V_INLINE void ensure(int64_t n, Lcg& rng, const uint32_t* prob, const int32_t* alias, uint64_t V) {
    if (tail - head >= n || remaining == 0) return;
    std::memmove(buf.data(), buf.data() + head, static_cast<size_t>(tail - head) * sizeof(int32_t));
    tail -= head, head = 0;
    const int64_t fill = std::min<int64_t>(static_cast<int64_t>(buf.size()) - tail, remaining);
    for (int64_t i = 0; i < fill; ++i) buf[tail++] = draw_noise(rng, prob, alias, V);
    remaining -= fill;
  }
};

struct Scratch {
  std::vector<int32_t> sen, shrink, stamp;
  NegStream negs;
  std::vector<float*> in, out, rows, tmp_rows;
  std::vector<float> label, mult, f, g, tmp, h, neu1e, e;
};

struct Shared {
  const Word2VecParams& p;
  const Word2VecData& d;
  std::atomic<int64_t> words{0};
  std::atomic<int> failed{0};  // 1: a non-finite score, 2: the loss diverged (clamp)
  std::atomic<double> failed_alpha{0.0};
  double total = 1.0;                  // epochs x N
  std::vector<int64_t> chunks;         // [n + 1] sentence ranges of about chunk_words tokens each
  std::atomic<int64_t> next_chunk{0};  // chunks are handed out in order, epoch after epoch
  std::vector<Scratch> scratch;
};

// Per-thread loss and health of the scores.
struct Tally {
  double loss = 0.0, terms = 0.0;
  bool bad = false;  // a non-finite score was met
};

W2V_INLINE void relaxed_store(double* p, double v) { __atomic_store(p, &v, __ATOMIC_RELAXED); }

// How a score becomes a gradient: the sigmoid inside (-6, 6) (the references' table, or interpolated) and,
// outside, skip (gensim, and hierarchical softmax everywhere) or clamp (word2vec.c's negative sampling).
struct StepRule {
  bool clamp, smooth;
};

// The SGD step of one score f of a prediction with this label: alpha·(label - sigmoid(f)) inside the table;
// outside, 0 (skipped) or, with clamp, alpha·(label - [f > 0]) (a NaN gets label·alpha and stops the run).
W2V_INLINE float step(float label, float f, StepRule rule, float alpha) {
  if (in_table(f)) return (label - table_sigmoid(f, rule.smooth)) * alpha;
  return rule.clamp ? (label - (f > 0.0f ? 1.0f : 0.0f)) * alpha : 0.0f;
}

// ------------------------------------------------------------------------------------------- exact update

// One prediction, gensim's inner loop: for k = 0..n-1 in order, f = x·out[k]; g = (label[k] - sigmoid(f))·alpha
// (saturated f: skipped, or clamped for negative sampling with clamp); e += g·out[k]; out[k] += g·x. Then
// x += e (kAddToX, skip-gram) or e is left in sc.e (CBOW). The rows out[k] are distinct unless `repeats`,
// so all n scores can be taken first and the updates fused into one pass (outputs_part); with repeats a row's
// second score must see its first update, and the loop runs row by row.
template <typename V, int U, bool kAddToX>
W2V_INLINE void predict(float* x, float* const* out, const float* label, int n, bool repeats, StepRule rule,
                        float alpha, int64_t D, Scratch& sc, Tally& tl) {
  float* f = sc.f.data();
  float* g = sc.g.data();
  auto gradient = [&](int k, float fk, float& gk) W2V_LAMBDA {
    tl.bad |= !finite(fk);
    tl.loss += neg_log_sigmoid(label[k] > 0.5f ? fk : -fk);
    gk = step(label[k], fk, rule, alpha);
    return gk != 0.0f;
  };
  tl.terms += n;
  if (!repeats) {
    score_matrix<V, U>(&x, 1, out, n, D, f);
    float** rows = sc.rows.data();
    int q = 0;
    for (int k = 0; k < n; ++k)
      if (gradient(k, f[k], g[q])) rows[q++] = out[k];
    update_outputs<V, U, kAddToX>(rows, g, g, q, x, sc.e.data(), D);
    return;
  }
  float* e = sc.e.data();
  float* ek = sc.tmp.data();
  std::fill(e, e + D, 0.0f);
  for (int k = 0; k < n; ++k) {
    float fk, gk;
    dots<V, U, 1>(x, out + k, D, &fk);
    if (!gradient(k, fk, gk)) continue;
    update_outputs<V, U, false>(out + k, &gk, &gk, 1, x, ek, D);  // ek = gk·out[k]; out[k] += gk·x
    axpy<V>(1.0f, ek, e, D);
  }
  if (kAddToX) axpy<V>(1.0f, e, x, D);
}

// Output rows and labels of one center's prediction: its Huffman path, or the center plus the noise words
// negs[0..K) other than the center. Returns the row count; `repeats` says whether a noise word repeats.
W2V_INLINE int hs_targets(const Word2VecData& d, int64_t D, int32_t w, float** out, float* label) {
  const int32_t* pt = d.points + static_cast<int64_t>(w) * d.L;
  const uint8_t* cd = d.codes + static_cast<int64_t>(w) * d.L;
  const int len = d.lengths[w];
  for (int k = 0; k < len; ++k) {
    out[k] = d.syn1 + static_cast<int64_t>(pt[k]) * D;
    label[k] = cd[k] ? 0.0f : 1.0f;
  }
  return len;
}

// Repeats: compared pairwise for K <= 8; beyond, stamp[word] == epoch marks the words already in this pair.
W2V_INLINE int ns_targets(const Word2VecData& d, int64_t V, int64_t D, int32_t w, const int32_t* negs, int K,
                          float** out, float* label, int32_t* stamp, int32_t& epoch, bool& repeats) {
  out[0] = d.syn1neg + static_cast<int64_t>(w) * D;
  label[0] = 1.0f;
  int n = 1;
  repeats = false;
  if (K > 8 && ++epoch == 0x7fffffff) {  // reset the stamps before the epoch counter wraps
    std::fill(stamp, stamp + V, 0);
    epoch = 1;
  }
  for (int k = 0; k < K; ++k) {
    const int32_t nw = negs[k];
    if (nw == w) continue;  // gensim and word2vec.c: the center is never its own negative
    if (K <= 8) {
      for (int j = 1; j < n && !repeats; ++j) repeats = out[j] == d.syn1neg + static_cast<int64_t>(nw) * D;
    } else {
      repeats |= stamp[nw] == epoch;
      stamp[nw] = epoch;
    }
    out[n] = d.syn1neg + static_cast<int64_t>(nw) * D;
    label[n++] = 0.0f;
  }
  return n;
}

template <typename V, int U>
W2V_INLINE void exact_sentence(const Word2VecParams& p, const Word2VecData& d, Scratch& sc, Lcg& rng, int64_t n,
                               float alpha, int32_t& epoch, Tally& tl) {
  const int64_t D = p.D;
  const int W = p.window, K = p.negative;
  const StepRule ns_rule{p.clamp != 0, p.smooth_sigmoid != 0}, hs_rule{false, p.smooth_sigmoid != 0};
  const int32_t* sen = sc.sen.data();
  float** out = sc.out.data();
  float* label = sc.label.data();
  const int L = static_cast<int>(d.L);
  float** hs_out = out + (K + 1);  // the path's rows follow the negative-sampling rows
  float* hs_label = label + (K + 1);
  auto bounds = [&](int64_t i, int64_t& lo, int64_t& hi) W2V_LAMBDA {
    lo = std::max<int64_t>(0, i - W + sc.shrink[i]);
    hi = std::min<int64_t>(n, i + W + 1 - sc.shrink[i]);
  };
  if (K) {  // this sentence's noise draws: one set per pair (skip-gram) or per center (CBOW)
    int64_t need = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t lo, hi;
      bounds(i, lo, hi);
      need += p.sg ? hi - lo - 1 : 1;
    }
    sc.negs.start(need * K);
  }
  // The next K noise words as output rows after the center's: prefetch the rows of the K after them (the next
  // pair's), then list the targets. Returns the row count; `repeats` says whether a noise word repeats.
  auto noise_targets = [&](int32_t w, bool& repeats) W2V_LAMBDA {
    sc.negs.ensure(2 * K, rng, d.noise_prob, d.noise_alias, static_cast<uint64_t>(p.V));
    const int32_t* negs = sc.negs.buf.data() + sc.negs.head;
    sc.negs.head += K;
    for (int64_t k = sc.negs.head; k < std::min(sc.negs.tail, sc.negs.head + K); ++k)
      prefetch_row(d.syn1neg + static_cast<int64_t>(sc.negs.buf[k]) * D, D);
    return ns_targets(d, p.V, D, w, negs, K, out, label, sc.stamp.data(), epoch, repeats);
  };
  for (int64_t i = 0; i < n; ++i) {
    const int32_t w = sen[i];
    int64_t lo, hi;
    bounds(i, lo, hi);
    const int nhs = p.hs ? hs_targets(d, D, w, hs_out, hs_label) : 0;
    if (p.hs && i + 1 < n) {  // the next center's path: its deep nodes are rarely in cache
      const int32_t* pt = d.points + static_cast<int64_t>(sen[i + 1]) * d.L;
      for (int k = 0; k < d.lengths[sen[i + 1]]; ++k) prefetch_row(d.syn1 + static_cast<int64_t>(pt[k]) * D, D);
    }
    if (p.sg) {
      for (int64_t j = lo; j < hi; ++j) {
        if (j == i) continue;
        float* x = d.syn0 + static_cast<int64_t>(sen[j]) * D;
        if (p.hs) predict<V, U, true>(x, hs_out, hs_label, nhs, false, hs_rule, alpha, D, sc, tl);
        if (K) {
          bool repeats;
          const int no = noise_targets(w, repeats);
          predict<V, U, true>(x, out, label, no, repeats, ns_rule, alpha, D, sc, tl);
        }
      }
      continue;
    }
    // CBOW: h = sum (or mean) of the context rows; with no context h = 0 (the noise draws still happen).
    float** in = sc.in.data();
    int m = 0;
    for (int64_t j = lo; j < hi; ++j)
      if (j != i) in[m++] = d.syn0 + static_cast<int64_t>(sen[j]) * D;
    float* h = sc.h.data();
    const float inv = m > 0 ? 1.0f / static_cast<float>(m) : 1.0f;
    auto cbow = [&](float** rows, float* lab, int no, bool repeats, StepRule rule) W2V_LAMBDA {
      const float coef = p.cbow_mean ? inv : 1.0f;
      float* hp[1] = {h};
      combine_rows<V, U>(hp, 1, false, &coef, 0, 0, in, m, D);  // h = (1/m or 1) sum of the context rows
      predict<V, U, false>(h, rows, lab, no, repeats, rule, alpha, D, sc, tl);
      const float scale = p.cbow_mean ? 1.0f : inv;  // the sum spreads its error over the context rows
      for (int a = 0; a < m; ++a) axpy<V>(scale, sc.e.data(), in[a], D);
    };
    if (m == 0) {  // h = 0: no row changes (gensim still draws the noise words)
      if (K) {
        sc.negs.ensure(K, rng, d.noise_prob, d.noise_alias, static_cast<uint64_t>(p.V));
        sc.negs.head += K;
      }
      continue;
    }
    if (p.hs) cbow(hs_out, hs_label, nhs, false, hs_rule);
    if (K) {
      bool repeats;
      const int no = noise_targets(w, repeats);
      cbow(out, label, no, repeats, ns_rule);
    }
  }
}

// ------------------------------------------------------------------------------------------- window update

// Skip-gram, one window: S = In·Out^T [m, n]; G = mult·step(label, S); In += G·Out; Out += G^T·In, both from
// the values read before the update (tmp holds G·Out until Out has been updated). Rows k < nhs are the
// Huffman path (saturated scores skipped); the others are negative sampling (clamp applies).
template <typename V, int U>
W2V_INLINE void window_update(float* const* in, int m, float* const* out, const float* label, const float* mult,
                              int n, int nhs, StepRule rule, float alpha, int64_t D, Scratch& sc, Tally& tl) {
  float* G = sc.g.data();
  score_matrix<V, U>(in, m, out, n, D, G);
  for (int a = 0; a < m; ++a)
    for (int k = 0; k < n; ++k) {
      const float f = G[a * n + k];
      tl.bad |= !finite(f);
      G[a * n + k] = mult[k] * step(label[k], f, StepRule{rule.clamp && k >= nhs, rule.smooth}, alpha);
      tl.loss += mult[k] * neg_log_sigmoid(label[k] > 0.5f ? f : -f);
    }
  tl.terms += static_cast<double>(m) * n;
  float* const* tmp = sc.tmp_rows.data();
  combine_rows<V, U>(tmp, m, false, G, n, 1, out, n, D);  // tmp[a] = sum_k G[a, k] out[k]
  combine_rows<V, U>(out, n, true, G, 1, n, in, m, D);    // out[k] += sum_a G[a, k] in[a]
  for (int a = 0; a < m; ++a) axpy<V>(1.0f, tmp[a], in[a], D);
}

// CBOW, one center: h = sum (or mean) of the m context rows predicts the center; all scores are read before
// any output row changes.
template <typename V, int U>
W2V_INLINE void cbow_window_update(float* const* in, int m, float* const* out, const float* label,
                                   const float* mult, int n, int nhs, StepRule rule, float alpha, int64_t D,
                                   bool mean, Scratch& sc, Tally& tl) {
  const float inv = 1.0f / static_cast<float>(m);
  float* h = sc.h.data();
  float* g = sc.g.data();
  float* hp[1] = {h};
  std::fill(g, g + m, mean ? inv : 1.0f);
  combine_rows<V, U>(hp, 1, false, g, 0, 1, in, m, D);  // h = (1/m) sum_a in[a]
  score_matrix<V, U>(hp, 1, out, n, D, g);
  for (int k = 0; k < n; ++k) {
    const float f = g[k];
    tl.bad |= !finite(f);
    g[k] = mult[k] * step(label[k], f, StepRule{rule.clamp && k >= nhs, rule.smooth}, alpha) * (mean ? 1.0f : inv);
    tl.loss += mult[k] * neg_log_sigmoid(label[k] > 0.5f ? f : -f);
  }
  tl.terms += n;
  float* gh = g + n;  // the output rows move by the undivided g (the sum variant divides only the error)
  for (int k = 0; k < n; ++k) gh[k] = mean ? g[k] : g[k] * static_cast<float>(m);
  float* neu1e = sc.neu1e.data();
  update_outputs<V, U, false>(out, g, gh, n, h, neu1e, D);  // neu1e = sum_k g[k] out[k]; out[k] += gh[k] h
  for (int a = 0; a < m; ++a) axpy<V>(1.0f, neu1e, in[a], D);
}

template <typename V, int U>
W2V_INLINE void window_sentence(const Word2VecParams& p, const Word2VecData& d, Scratch& sc, Lcg& rng, int64_t n,
                                float alpha, Tally& tl) {
  const int64_t D = p.D;
  const int W = p.window;
  const uint64_t vocab = static_cast<uint64_t>(p.V);
  const StepRule rule{p.clamp != 0, p.smooth_sigmoid != 0};
  for (int64_t i = 0; i < n; ++i) {
    const int32_t w = sc.sen[i];
    const int64_t lo = std::max<int64_t>(0, i - W + sc.shrink[i]), hi = std::min<int64_t>(n, i + W + 1 - sc.shrink[i]);
    int m = 0;
    for (int64_t j = lo; j < hi; ++j)
      if (j != i) sc.in[m++] = d.syn0 + static_cast<int64_t>(sc.sen[j]) * D;
    int no = p.hs ? hs_targets(d, D, w, sc.out.data(), sc.label.data()) : 0;
    const int nhs = no;
    std::fill(sc.mult.begin(), sc.mult.begin() + no, 1.0f);
    if (p.negative) {
      const int first = no;
      sc.out[no] = d.syn1neg + static_cast<int64_t>(w) * D;
      sc.mult[no] = 1.0f;
      sc.label[no++] = 1.0f;
      for (int k = 0; k < p.negative; ++k) {
        const int32_t nw = draw_noise(rng, d.noise_prob, d.noise_alias, vocab);
        if (nw == w) continue;
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
    if (m == 0 || no == 0) continue;
    if (p.sg)
      window_update<V, U>(sc.in.data(), m, sc.out.data(), sc.label.data(), sc.mult.data(), no, nhs, rule, alpha,
                          D, sc, tl);
    else
      cbow_window_update<V, U>(sc.in.data(), m, sc.out.data(), sc.label.data(), sc.mult.data(), no, nhs, rule,
                               alpha, D, p.cbow_mean != 0, sc, tl);
  }
}

// ------------------------------------------------------------------------------------------- threads

template <typename V, int U>
W2V_INLINE void worker_body(Shared& sh, int t) {
  const Word2VecParams& p = sh.p;
  const Word2VecData& d = sh.d;
  Scratch& sc = sh.scratch[t];
  Lcg rng = lcg_for_thread(p.seed, t);
  int64_t done = 0, reported = 0;
  int32_t epoch = 0;
  Tally tl;
  double last_loss = 0.0, last_terms = 0.0;
  const int64_t n_chunks = static_cast<int64_t>(sh.chunks.size()) - 1;
  for (;;) {
    const int64_t c = sh.next_chunk.fetch_add(1, std::memory_order_relaxed);
    if (c >= n_chunks * p.epochs) break;
    const int64_t first = sh.chunks[c % n_chunks], last = sh.chunks[c % n_chunks + 1];
    for (int64_t s = first; s < last; ++s) {
      if ((d.stop && __atomic_load_n(d.stop, __ATOMIC_RELAXED)) || sh.failed.load(std::memory_order_relaxed))
        return;
      // Linear decay by the words all threads have processed (with one thread: every word before this
      // sentence), as word2vec.c; it moves by less than 1e-9 per sentence, so recomputing it is free.
      const double progress = static_cast<double>(sh.words.load(std::memory_order_relaxed) + done - reported);
      const float alpha = static_cast<float>(std::max(p.min_alpha, p.alpha - (p.alpha - p.min_alpha) * progress / sh.total));
      const int32_t* raw = d.tokens + d.offsets[s];
      const int64_t nraw = d.offsets[s + 1] - d.offsets[s];
      const int64_t n = subsample(raw, nraw, d.keep, rng, sc.sen.data());
      for (int64_t i = 0; i < n; ++i) sc.shrink[i] = p.shrink_windows ? static_cast<int>(rng.next() % p.window) : 0;
      if (p.window_update) window_sentence<V, U>(p, d, sc, rng, n, alpha, tl);
      else exact_sentence<V, U>(p, d, sc, rng, n, alpha, epoch, tl);
      done += nraw;
      if (done - reported >= 10000 || s + 1 == last || tl.bad) {
        sh.words.fetch_add(done - reported, std::memory_order_relaxed);
        reported = done;
        if (d.progress) {
          relaxed_store(d.progress + 3 * t, static_cast<double>(done));
          relaxed_store(d.progress + 3 * t + 1, tl.loss);
          relaxed_store(d.progress + 3 * t + 2, tl.terms);
        }
        // word2vec.c's clamped gradient can grow the weights without bound and stay finite (1e9 at alpha 0.75):
        // a mean loss above kDivergedLoss per prediction (scores 1000 on the wrong side) since the last report
        // is a diverged run. gensim's skip rule keeps the weights bounded, and its large-alpha runs are valid.
        const double dl = tl.loss - last_loss, dt = tl.terms - last_terms;
        last_loss = tl.loss, last_terms = tl.terms;
        const int why = tl.bad ? 1 : (p.clamp && dt > 0 && dl > kDivergedLoss * dt ? 2 : 0);
        if (why) {  // stop every thread, report the learning rate
          sh.failed_alpha.store(alpha, std::memory_order_relaxed);
          sh.failed.store(why, std::memory_order_relaxed);
          return;
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
  Lcg rng = lcg_for_thread(seed, 0);
  return subsample(tokens, n, keep, rng, out);
}

void word2vec_draw_noise(const uint32_t* prob, const int32_t* alias, int64_t V, int64_t n, uint64_t seed,
                         int32_t* out) {
  Lcg rng = lcg_for_thread(seed, 0);
  for (int64_t i = 0; i < n; ++i) out[i] = draw_noise(rng, prob, alias, static_cast<uint64_t>(V));
}

void word2vec_sigmoid(const float* f, int64_t n, bool smooth, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = in_table(f[i]) ? table_sigmoid(f[i], smooth) : std::nanf("");
}

const char* word2vec_isa() {
  static std::string isa;
  isa = detect_isa();
  return isa.c_str();
}

Word2VecResult word2vec_train(const Word2VecParams& p, const Word2VecData& d) {
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
  const int K = p.negative;
  const int max_out = (p.hs ? static_cast<int>(d.L) : 0) + (K ? K + 1 : 0) + 1;
  const int max_in = 2 * p.window;
  sh.scratch.resize(T);
  for (Scratch& sc : sh.scratch) {  // allocated here, so that the threads never throw
    sc.sen.resize(std::max<int64_t>(longest, 1));
    sc.shrink.resize(std::max<int64_t>(longest, 1));
    if (!p.window_update && K > 8) sc.stamp.assign(p.V, 0);
    sc.negs.buf.resize(std::max(4096, 4 * K));
    sc.in.resize(max_in);
    sc.out.resize(max_out);
    sc.rows.resize(max_out);
    sc.label.resize(max_out);
    sc.mult.resize(max_out);
    sc.f.resize(max_out);
    sc.g.resize(static_cast<size_t>(std::max(max_in, 2)) * max_out + max_in);  // G, or CBOW's g and gh
    const int tmp_rows = p.window_update && p.sg ? max_in : 0;  // the window update's G·Out
    sc.tmp.resize(static_cast<size_t>(std::max(tmp_rows, 1)) * p.D);
    sc.tmp_rows.resize(tmp_rows);
    for (int a = 0; a < tmp_rows; ++a) sc.tmp_rows[a] = sc.tmp.data() + static_cast<size_t>(a) * p.D;
    sc.h.resize(p.D);
    sc.neu1e.resize(p.D);
    sc.e.resize(p.D);
  }
  const Worker work = pick_worker(detect_isa());
  if (T == 1) {
    work(sh, 0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(T);
    for (int t = 0; t < T; ++t) pool.emplace_back(work, std::ref(sh), t);
    for (std::thread& th : pool) th.join();
  }
  Word2VecResult r;
  r.words = sh.words.load();
  if (sh.failed.load()) {
    r.status = 1 + sh.failed.load();
    r.alpha = sh.failed_alpha.load();
  } else if (d.stop && __atomic_load_n(d.stop, __ATOMIC_RELAXED)) {
    r.status = 1;
  }
  return r;
}

}  // namespace fastrepr
