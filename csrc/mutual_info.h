// Histogram discretization fused with discrete mutual information (the core of MIG, modularity and the
// unsupervised mutual-information score of Locatello et al. 2019, as disentanglement_lib computes them):
//   bin[n, d]  = #{b : edges[d, b] <= x[n, d]}              (np.digitize(x[:, d], edges[d]), in [0, B])
//   out[d, f]  = sum_ij c_ij / N * log(N c_ij / (a_i b_j))   (nats; c = contingency of bin[:, d] and y[:, f])
// with y = labels [N, F] in [0, num_labels), or, without labels, y = the bins of every column (F = D).
// T is float or double; the comparison runs in T. Extra memory: O(D * N) bytes for the bins and one
// (B + 1) x K count table per thread. Results are clipped at 0 and do not depend on the thread count.
#pragma once
#include <cstdint>

namespace fastrepr {

// Sizes the callers must respect (the binding checks them; fastrepr/ops/mutual_info.py mirrors them): at most
// kHistogramMaxBins edges per column (the discretization costs N * D * B comparisons), and a (B + 1) x K count
// table of at most kHistogramMaxTable int64 entries (128 MiB per thread).
constexpr int64_t kHistogramMaxBins = 1024;
constexpr int64_t kHistogramMaxTable = int64_t(1) << 24;

// Returns false (out unspecified) if a label lies outside [0, num_labels).
template <typename T>
bool histogram_mutual_info(const T* x, int64_t N, int64_t D, const T* edges, int64_t B, const int64_t* labels,
                           int64_t F, int64_t num_labels, double* out, int num_threads);

}  // namespace fastrepr
