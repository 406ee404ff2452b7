// Log-sum-exp of a row of scores against a queue (memory bank) of negatives, streamed in tiles
// (fastrepr.ops.queue_lse; MoCo's queue, lightly's memory bank):
//   s[i, j]   = (qh_i . Q_j) * rq[j] * inv_t          qh [N, D] unit rows, Q [K, D], rq[j] = 1 / ||Q_j|| (or 1)
//   lse[i]    = log sum_j exp s[i, j]
//   wmean[i]  = sum_j softmax_j(s[i, :]) * rq[j] * Q_j   (the softmax-weighted mean of the unit queue rows:
//                                                        d lse[i] / d qh_i = wmean[i] * inv_t)
// T is the queue's storage type (float, double, bf16, fp16); Acc the type of qh, rq and the outputs (double
// for double queues, float otherwise). The [N, K] scores are never stored: each thread owns a block of rows and
// streams the queue in column tiles through a thread-private [rows, cols] buffer (an online max and sum as in
// flash attention), so the results do not depend on the thread count. Extra memory: O(threads · tile).
#pragma once
#include <cstdint>

#include "topk.h"  // Sgemm64, SetThreadsLocal: a BLAS already loaded in the process (topk_blas_register)

namespace fastrepr {

struct QueueLseGemm {
  Sgemm64 gemm = nullptr;               // float tiles through this single-threaded sgemm; nullptr: built-in loops
  SetThreadsLocal set_threads = nullptr;
};

template <typename T, typename Acc>
void queue_lse_forward(const Acc* qh, int64_t N, int64_t D, const T* queue, int64_t K, const Acc* rq, Acc inv_t,
                       Acc* lse, Acc* wmean, const QueueLseGemm& blas, int num_threads);

}  // namespace fastrepr
