// numpy's legacy RandomState.randint, replayed in bulk from its raw 32-bit Mersenne Twister output.
// RandomState.randint(high, size=n) with high <= 2^32 draws 32-bit words w and keeps w & mask when it is at most
// high - 1 (mask = the smallest 2^k - 1 >= high - 1; masked rejection sampling), and draws nothing for high = 1.
// Given the raw words (RandomState.randint(0, 2**32, dtype=uint32) returns them unchanged), this reproduces a
// whole sequence of calls at once. The disentanglement metrics draw their factors this way, call by call, in
// Python; replaying the same calls here gives the same factors without a Python call per randint.
#pragma once
#include <cstdint>

namespace fastrepr {

// out: the concatenated results of randint(highs[c], size=counts[c]) for c in [0, C); highs in [1, 2^32].
// Returns the number of raw words used, or -1 if `raw` (R words) ran out first.
int64_t legacy_randint(const uint32_t* raw, int64_t R, const int64_t* highs, const int64_t* counts, int64_t C,
                       int64_t* out);

}  // namespace fastrepr
