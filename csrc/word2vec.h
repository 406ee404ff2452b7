// word2vec training on the CPU: C++ threads over chunks (shards of whole sentences, handed out from a shared
// counter) of an int32-encoded corpus, lock-free (Hogwild, Recht et al. 2011) updates of shared float32
// tables, word2vec.c / gensim semantics:
//   * subsampling: a token of word w is dropped when a uniform uint32 exceeds keep[w];
//   * shrinking windows: each center uses a window of window - r, r uniform in [0, window);
//   * linear learning-rate decay from alpha to min_alpha over epochs x (in-vocabulary) corpus words;
//   * skip-gram (sg): the context word's syn0 row predicts the center word (through syn1neg with negatives
//     drawn from the unigram^alpha alias table, and/or through syn1 along the center's Huffman path);
//   * CBOW: the mean (cbow_mean) or sum of the context rows predicts the center; the error is added to every
//     context row undivided for the mean and divided by the count for the sum (as word2vec.c and gensim do).
// Skip-gram processes a whole window at once (Ji et al. 2016, "Parallelizing Word2Vec in Shared and Distributed
// Memory"): the 2b context rows [2b, D] and the output rows [n, D] (center + negatives shared by the window,
// or the center's Huffman path) form a small matrix product S = In·Out^T, G = alpha·(label - sigmoid(S)),
// In += G·Out, Out += G^T·In, all from the values read at the start of the window. word2vec.c instead draws
// fresh negatives for every (context, center) pair and applies each pair's update before the next one.
#pragma once
#include <cstdint>

namespace fastrepr {

struct Word2VecParams {
  int64_t V = 0, D = 0;
  int sg = 1, hs = 0, negative = 5, window = 5, cbow_mean = 1, epochs = 5, threads = 1;
  int shrink_windows = 1;
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

// Which code path runs: "avx2", "avx512" or "generic", chosen at run time from the CPU's features (AVX2
// preferred) or FASTREPR_W2V_ISA.
const char* word2vec_isa();

void word2vec_train(const Word2VecParams& p, const Word2VecData& data);

// The trainer's own samplers, exposed for tests: subsampling of a token array (returns how many were kept,
// written to out) and n draws from the noise alias table.
int64_t word2vec_subsample(const int32_t* tokens, int64_t n, const uint32_t* keep, uint64_t seed, int32_t* out);
void word2vec_draw_noise(const uint32_t* prob, const int32_t* alias, int64_t V, int64_t n, uint64_t seed,
                         int32_t* out);

}  // namespace fastrepr
