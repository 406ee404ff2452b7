// word2vec training on the CPU: C++ threads over chunks (shards of whole sentences, handed out from a shared
// counter) of an int32-encoded corpus, lock-free (Hogwild, Recht et al. 2011) updates of shared float32
// tables. Two update rules:
//
// update = exact (the default): gensim 4's word2vec_inner loop, which is word2vec.c's:
//   * per sentence: subsampling (a token of word w is dropped when a uniform 32-bit draw exceeds keep[w]),
//     then one shrink draw per kept token (a window of window - r, r = draw % window), then training;
//   * skip-gram: for each center, for each context word in its window, in order, one (context, center)
//     pair: the context's syn0 row predicts the center through syn1 along the center's Huffman path (hs),
//     then through syn1neg against the center and `negative` fresh noise words (a draw equal to the center is
//     skipped); each output row is updated before the next one is scored, and the context row takes the
//     summed error at the end of its pair, so the next pair sees every change;
//   * CBOW: h = mean (cbow_mean) or sum of the context rows predicts the center the same way; the error is
//     added to every context row (divided by the count for the sum);
//   * the sigmoid: the references' 1000-entry table read at index (int)((f + 6)·83) (their integer division:
//     sigmoid(0.012·floor(83 (f + 6)) - 6)), or, with smooth_sigmoid, an interpolated one (error < 2e-6);
//   * saturation: a score f with |f| >= 6 (word2vec's MAX_EXP) is skipped by hierarchical softmax (both
//     references) and, for negative sampling, skipped (gensim, clamp = 0) or given the gradient
//     alpha·(label - [f > 0]) (word2vec.c, clamp = 1);
//   * linear learning-rate decay from alpha to min_alpha by corpus words processed (all threads together),
//     recomputed at every sentence;
//   * random numbers: one 48-bit LCG per thread (next = next·25214903917 + 11 mod 2^48, a draw is next >> 16,
//     as in gensim), seeded with splitmix64(seed + thread·0x9E3779B97F4A7C15) mod 2^48; a noise draw x picks
//     bucket (x·V) >> 32 of the alias table and keeps it when (x·V) mod 2^32 < prob[bucket].
//   With one thread a run is a fixed function of the seed (tests/test_word2vec_reference.py replays it in
//   numpy); with more, threads race on shared rows as in gensim and word2vec.c (Hogwild), and results vary.
//
// update = window (Ji et al. 2016, "Parallelizing Word2Vec in Shared and Distributed Memory"): skip-gram
//   processes a whole window at once: the 2b context rows [2b, D] and the output rows [n, D] (center +
//   negatives shared by the window, or the center's Huffman path) form a small matrix product S = In·Out^T,
//   G = alpha·(label - sigmoid(S)), In += G·Out, Out += G^T·In, all from the values read at the start of the
//   window; CBOW scores all outputs of a center before updating any. Faster, and it changes the numbers
//   (benchmarks/RESULTS.md measures by how much).
//
// A score that is not finite (NaN or Inf weights) never indexes a table: the run stops at the end of the
// sentence and word2vec_train reports it. With clamp, a run whose loss explodes while staying finite (the clamped
// gradient never lets go) stops too.
#pragma once
#include <cstdint>

namespace fastrepr {

struct Word2VecParams {
  int64_t V = 0, D = 0;
  int sg = 1, hs = 0, negative = 5, window = 5, cbow_mean = 1, epochs = 5, threads = 1;
  int shrink_windows = 1;
  int window_update = 0;  // 0: exact (word2vec.c / gensim), 1: window (Ji et al. 2016)
  int clamp = 0;          // negative sampling at |f| >= 6: 0 skip (gensim), 1 clamp (word2vec.c)
  int smooth_sigmoid = 0; // 0: word2vec.c's / gensim's 1000-entry table lookup, 1: interpolated sigmoid
  double alpha = 0.025, min_alpha = 1e-4;
  uint64_t seed = 1;
};

struct Word2VecData {
  const int32_t* tokens = nullptr;   // [N] word ids
  int64_t N = 0;
  const int64_t* offsets = nullptr;  // [S + 1] sentence boundaries into tokens
  int64_t S = 0;
  const uint32_t* keep = nullptr;    // [V] subsampling thresholds, nullptr = keep all
  const uint32_t* noise_prob = nullptr;  // [V] alias acceptance thresholds (negative > 0)
  const int32_t* noise_alias = nullptr;  // [V]
  const int32_t* points = nullptr;   // [V, L] Huffman paths (hs)
  const uint8_t* codes = nullptr;    // [V, L]
  const int32_t* lengths = nullptr;  // [V]
  int64_t L = 0;
  float* syn0 = nullptr;     // [V, D] input vectors (the word vectors)
  float* syn1neg = nullptr;  // [V, D] output vectors for negative sampling
  float* syn1 = nullptr;     // [V - 1, D] inner-node vectors for hierarchical softmax
  double* progress = nullptr;  // [threads, 3]: words done, loss sum, loss terms (written relaxed, polled)
  const int32_t* stop = nullptr;  // nonzero: threads return at the next sentence
};

struct Word2VecResult {
  int status = 0;      // 0: done; 1: stopped through `stop`; 2: a non-finite score was met (diverged);
                       // 3: clamp only, the mean loss per prediction passed 1e3 between two reports (diverged)
  int64_t words = 0;   // corpus words processed (all threads)
  double alpha = 0.0;  // status 2, 3: the learning rate in use when it was met
};

// Which code path runs: "avx2", "avx512" or "generic", chosen at run time from the CPU's features (AVX2
// preferred) or FASTREPR_W2V_ISA.
const char* word2vec_isa();

Word2VecResult word2vec_train(const Word2VecParams& p, const Word2VecData& data);

// The trainer's own samplers, exposed for tests, on thread 0's stream of `seed`: subsampling of a token array
// (returns how many were kept, written to out) and n draws from the noise alias table.
int64_t word2vec_subsample(const int32_t* tokens, int64_t n, const uint32_t* keep, uint64_t seed, int32_t* out);
void word2vec_sigmoid(const float* f, int64_t n, bool smooth, float* out);  // NaN outside (-6, 6)
void word2vec_draw_noise(const uint32_t* prob, const int32_t* alias, int64_t V, int64_t n, uint64_t seed,
                         int32_t* out);

}  // namespace fastrepr
