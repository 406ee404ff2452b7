// Batched pairwise latent differences (the core of the BetaVAE score, Higgins et al. 2017):
//   dense: out[p, d] = mean_b |z1[p, b, d] - z2[p, b, d]|
//   index: out[p, d] = mean_b |z[i[p, b], d] - z[j[p, b], d]|
// T is the storage type (float, double, bf16, fp16); Acc the accumulation and output type
// (double for double inputs, float otherwise). Extra memory: none beyond `out`.
#pragma once
#include <cstdint>

namespace fastrepr {

template <typename T, typename Acc>
void pairwise_abs_diff_mean_dense(const T* z1, const T* z2, Acc* out, int64_t P, int64_t B, int64_t D,
                                  int num_threads);

// Returns false (and leaves `out` unspecified) if any index lies outside [0, N).
template <typename T, typename Acc>
bool pairwise_abs_diff_mean_index(const T* z, int64_t N, int64_t D, const int64_t* i, const int64_t* j,
                                  int64_t P, int64_t B, Acc* out, int num_threads);

}  // namespace fastrepr
