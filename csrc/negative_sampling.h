// Negative-sampling loss of word2vec (skip-gram: C = 1; CBOW: C context words, masked mean).
// For example b with inputs x[b, :C] (mask m[b, :C], n_b = sum_c m), target t[b] and negatives n[b, :K]:
//   h_b = (1/n_b) sum_c m_bc w_in[x_bc]
//   o_b = (t_b, n_b1, ..., n_bK), y = (1, 0, ..., 0), s_bj = h_b . w_out[o_bj]
//   loss_b = -sum_j log sigmoid((2 y_j - 1) s_bj)
// Backward with upstream gradient g_b: e_bj = g_b (sigmoid(s_bj) - y_j),
//   d w_out[o_bj] += e_bj h_b,   d w_in[x_bc] += m_bc / n_b * sum_j e_bj w_out[o_bj].
// T is the storage type (float, double, bf16, fp16), Acc the accumulation and output type. Index ranges are
// checked (the functions return false, leaving outputs unspecified, on an index outside its table). The loss
// of an example with a non-finite score (NaN/Inf in a row it reads, or an overflowing dot product) is NaN.
#pragma once
#include <cstdint>

namespace fastrepr {

struct NegativeSamplingShape {
  int64_t V_in, V_out, D, B, C, K;
};

// loss: [B]. mask: [B, C] bytes (nonzero = used) or nullptr for all used.
template <typename T, typename Acc>
bool negative_sampling_forward(const T* w_in, const T* w_out, const int64_t* inputs, const uint8_t* mask,
                               const int64_t* targets, const int64_t* negatives, NegativeSamplingShape s,
                               Acc* loss, int num_threads);

// grad: [B]. Dense (sparse == false): d_in [V_in, D] and d_out [V_out, D], zero on entry, receive the sums;
// each row is owned by one thread, so the result is deterministic and independent of the thread count.
// Sparse: d_in [B, C, D] and d_out [B, 1 + K, D] receive one gradient row per index (masked inputs get 0).
// Scratch: 2·B·D + B·(1 + K) Acc values.
template <typename T, typename Acc>
bool negative_sampling_backward(const T* w_in, const T* w_out, const int64_t* inputs, const uint8_t* mask,
                                const int64_t* targets, const int64_t* negatives, NegativeSamplingShape s,
                                const Acc* grad, Acc* d_in, Acc* d_out, bool sparse, int num_threads);

// One SGD step in place, w -= lr * d(sum_b loss_b)/dw, example by example (float or double tables). Threads
// update shared rows without locks (Hogwild, as word2vec); with one thread the result is deterministic.
// mean_grad = false adds the error of h to every input row undivided (word2vec's CBOW update). loss: [B].
template <typename T>
bool negative_sampling_step(T* w_in, T* w_out, const int64_t* inputs, const uint8_t* mask, const int64_t* targets,
                            const int64_t* negatives, NegativeSamplingShape s, T lr, bool mean_grad, T* loss,
                            int num_threads);

}  // namespace fastrepr
