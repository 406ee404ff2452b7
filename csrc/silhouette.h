// The fused euclidean silhouette's pair pass (fastrepr/ops/silhouette.py has the math and the precision
// argument): S[i, c] = sum over rows j of cluster c of d(i, j), for every row i, without the N x N distances.
// Rows are visited in label order (order[]); the row groups of each block of `block` sorted rows are given
// (one label segment each, or a whole block of many labels), each shifted by its own mean m (rounded to
// float32) together with every key row it meets. For each group and each key block at or after its own:
//   g = (x - m)·(y - m)ᵀ: a single-threaded sgemm per thread into an L2-sized tile (rows x one key block)
//   d2 = |x - m|² + |y - m|² - 2 g;  d2 < exact_below (|x - m|² + |y - m|²)  ->  d2 = sum_k (x_k - y_k)² in double
//   d = sqrt(max(d2, 0)), d(i, i) = 0;  row sums per key label segment;  column sums into the key rows
//   (symmetry: each unordered pair is computed once). On its own block a group takes only the keys from its
//   first row on, and a labelled group's row chunk only those from its own first row on: the chunk's own square
//   gives row sums only, every later key row and column sums.
// Sums are double. Row chunks (near-equal, a multiple of the thread count) are dealt round-robin among threads
// and column sums reduced in thread order, so the result depends on the thread count only. The row pass is
// compiled for AVX-512, AVX2 and baseline x86-64; the fused pass of uncancelled segments is AVX2 where the CPU
// has it.
#pragma once
#include <cstdint>

#include "topk.h"  // Sgemm64, SetThreadsLocal

namespace fastrepr {

struct SilhouetteProblem {
  const float* z;          // [N, D] rows in the caller's order
  int64_t N, D;
  const int64_t* order;    // [N] a permutation of 0..N-1 that sorts the labels
  const int64_t* labels;   // [N] the labels in sorted order, in [0, C)
  int64_t C, block;        // block: rows per block of the sorted order
  const int64_t* groups;   // [G, 3] (start, end, label or -1) in sorted positions, in order, covering 0..N,
  int64_t G;               //   each inside one block; a label >= 0: every row of the group has it
  float exact_below;
};

struct SilhouetteGemm {
  Sgemm64 gemm = nullptr;  // nullptr: built-in loops
  SetThreadsLocal set_threads = nullptr;
};

// sums [N, C] (sorted order) += the distance sums. Returns "" or what is malformed in the problem (checked
// before any work: permutation, labels, groups).
const char* silhouette_sums(const SilhouetteProblem& p, const SilhouetteGemm& blas, double* sums, int num_threads);

}  // namespace fastrepr
