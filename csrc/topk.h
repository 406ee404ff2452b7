// Running top-k lists fed by score tiles: the CPU side of fastrepr.ops.topk_search and analogy_topk.
#pragma once
#include <cstdint>

namespace fastrepr {

// Scores of columns [col0, col0 + C) for Q rows, folded into per-row lists sorted by score descending
// (equal scores: lower column first). S is a [U, C] float32 tile; rows[q] = (a, b, c) rows of S:
//   mode 0 (search):  score = S[a, j]
//   mode 1 (3CosAdd): score = (S[b, j] + S[c, j] - S[a, j]) * scale[q]
//   mode 2 (3CosMul): score = ((1 + S[b, j]) / 2 * (1 + S[c, j]) / 2) / ((1 + S[a, j]) / 2 + 1e-6)
// Columns listed in excl[q, 0:E] (global ids) are skipped; NaN scores are never kept. top_v/top_i [Q, K]
// hold the lists between calls (start: -inf and distinct negative ids). Returns false if a row id is
// outside [0, U).
bool topk_merge(const float* S, int64_t U, int64_t C, const int64_t* rows, const float* scale, int mode,
                const int64_t* excl, int64_t E, int64_t col0, int64_t Q, int64_t K, float* top_v,
                int64_t* top_i, int threads);

}  // namespace fastrepr
