#include "sampling.h"

namespace fastrepr {

int64_t legacy_randint(const uint32_t* raw, int64_t R, const int64_t* highs, const int64_t* counts, int64_t C,
                       int64_t* out) {
  int64_t used = 0, written = 0;
  for (int64_t c = 0; c < C; ++c) {
    const uint64_t rng = static_cast<uint64_t>(highs[c] - 1);
    if (rng == 0) {  // randint(1): zeros, no draw
      for (int64_t i = 0; i < counts[c]; ++i) out[written++] = 0;
      continue;
    }
    uint64_t mask = rng;  // smear the top bit down: the smallest 2^k - 1 >= rng
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    for (int64_t i = 0; i < counts[c]; ++i) {
      uint64_t value;
      do {
        if (used >= R) return -1;
        value = static_cast<uint64_t>(raw[used++]) & mask;
      } while (value > rng);
      out[written++] = static_cast<int64_t>(value);
    }
  }
  return used;
}

}  // namespace fastrepr
