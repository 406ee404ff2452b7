// One tile of the fused euclidean silhouette (fastrepr/ops/silhouette.py has the math and the precision
// argument): from the float32 dot products of shifted rows, the distances of R rows to B2 key rows, their
// per-cluster row sums and (optionally) their column sums, in one pass over the tile after the GEMM.
//   d2[i, j] = sqx[i] + sqy[j] - 2 g[i, j]       (g: the dot products, overwritten by the distances)
//   d2 < exact_below * (sqx[i] + sqy[j])  ->  d2 = sum_k (xr[i, k] - yr[j, k])^2 in double (cancellation; xr, yr: the unshifted float32 rows)
//   d = sqrt(max(d2, 0)); d[i, i + diag] = 0
//   row_sums[i, seg_label[s]] += sum_{j in segment s} d[i, j]     (segments: runs of equal column labels)
//   col_sums[j] += sum_i d[i, j]                                   (when col_sums is not null)
// Sums are double; each row is owned by one thread, the column sums are reduced from per-thread buffers in a
// fixed order, so the result does not depend on scheduling for a given thread count. The row pass is compiled
// for AVX-512, AVX2 and baseline x86-64 (function multiversioning, chosen at load time).
#pragma once
#include <cstdint>

namespace fastrepr {

// Returns false if a segment is malformed (seg_start not increasing within [0, B2], a label outside [0, C)).
bool silhouette_tile(float* g, int64_t R, int64_t B2, const float* sqx, const float* sqy, const float* xr,
                     const float* yr, int64_t D, const int64_t* seg_start, const int64_t* seg_label, int64_t S,
                     double* row_sums, int64_t C, double* col_sums, float exact_below, int64_t diag,
                     int num_threads);

}  // namespace fastrepr
