// The trainer's random draws (csrc/word2vec.cpp), bit-for-bit those of gensim and word2vec.c: their linear
// congruential generator, subsampling and alias-table noise draws. Include from word2vec.cpp only (force-inlined
// into its per-instruction-set workers).
#pragma once
#include <cstdint>

#include "w2v_simd.h"

namespace fastrepr {
namespace w2v {

// gensim's and word2vec.c's generator (Java's LCG): 48-bit state, a draw is its upper 32 bits.
constexpr uint64_t kMask48 = (1ULL << 48) - 1;
struct Lcg {
  uint64_t s;
  W2V_INLINE uint32_t next() {
    const uint32_t x = static_cast<uint32_t>(s >> 16);
    s = (s * 25214903917ULL + 11) & kMask48;
    return x;
  }
};
inline Lcg lcg_for_thread(uint64_t seed, int t) {
  uint64_t z = seed + static_cast<uint64_t>(t) * 0x9E3779B97F4A7C15ULL + 0x9E3779B97F4A7C15ULL;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return Lcg{(z ^ (z >> 31)) & kMask48};
}

// Subsampling as gensim: keep token w unless keep[w] < draw (keep == nullptr: no draw, keep all).
W2V_INLINE int64_t subsample(const int32_t* raw, int64_t n, const uint32_t* keep, Lcg& rng, int32_t* out) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t w = raw[i];
    if (keep && keep[w] < rng.next()) continue;
    out[kept++] = w;
  }
  return kept;
}

// One alias-table draw from one 32-bit number: x·V / 2^32 = bucket + fraction; the fraction (resolution V/2^32)
// decides between the bucket and its alias.
W2V_INLINE int32_t draw_noise(Lcg& rng, const uint32_t* prob, const int32_t* alias, uint64_t V) {
  const uint64_t xv = static_cast<uint64_t>(rng.next()) * V;
  const uint32_t bucket = static_cast<uint32_t>(xv >> 32);
  return static_cast<uint32_t>(xv) < prob[bucket] ? static_cast<int32_t>(bucket) : alias[bucket];
}

}  // namespace w2v
}  // namespace fastrepr
