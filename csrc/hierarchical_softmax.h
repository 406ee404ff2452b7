// Hierarchical-softmax loss of word2vec over a Huffman tree. Example b has hidden vector h_b and target t_b,
// whose path has length len[t_b], inner-node rows p_bj = points[t_b, j] and branch bits c_bj = codes[t_b, j]:
//   s_bj = h_b . w_nodes[p_bj],  loss_b = -sum_{j < len} log sigmoid((1 - 2 c_bj) s_bj)
// Backward with upstream gradient g_b: e_bj = g_b (sigmoid(s_bj) - (1 - c_bj)),
//   d h_b = sum_j e_bj w_nodes[p_bj],  d w_nodes[p_bj] += e_bj h_b.
// Shapes: h [B, D], w_nodes [N, D], targets [B], points/codes [V, L], lengths [V]. The functions return false
// (outputs unspecified) if a target lies outside [0, V), a length outside [0, L], a used point outside [0, N),
// or a used code is not 0 or 1. The forward loss of an example with a non-finite score is NaN.
#pragma once
#include <cstdint>

namespace fastrepr {

struct HierarchicalSoftmaxShape {
  int64_t N, D, B, V, L;
};

template <typename T, typename Acc>
bool hierarchical_softmax_forward(const T* h, const T* w_nodes, const int64_t* targets, const int64_t* points,
                                  const uint8_t* codes, const int64_t* lengths, HierarchicalSoftmaxShape s,
                                  Acc* loss, int num_threads);

// d_h: [B, D] (written). Dense: d_nodes [N, D], zero on entry, receives the sums (rows owned by one thread
// each: deterministic). Sparse: d_nodes [B, L, D] receives one row per path position (0 past the path end).
template <typename T, typename Acc>
bool hierarchical_softmax_backward(const T* h, const T* w_nodes, const int64_t* targets, const int64_t* points,
                                   const uint8_t* codes, const int64_t* lengths, HierarchicalSoftmaxShape s,
                                   const Acc* grad, Acc* d_h, Acc* d_nodes, bool sparse, int num_threads);

}  // namespace fastrepr
