"""word2vec's Huffman tree for hierarchical softmax (Morin & Bengio 2005; Mikolov et al. 2013).

Each word is a leaf; each of the V - 1 inner nodes owns an output vector (``w_nodes`` [V - 1, D]). A word's
path from the root lists the inner nodes it passes (``points``) and the branch taken at each (``codes``, 0 or
1); P(word | h) = prod_j sigmoid((1 - 2·code_j) · h·w_nodes[point_j]). Frequent words get short codes, so the
expected path length is the entropy bound (within 1 bit).

Every Huffman tree of the same counts is optimal; they differ in how ties between equal weights are broken,
and that changes which words share inner nodes (and the trained vectors: on gensim's 0.5M-token corpus, CBOW +
hierarchical softmax moved WordSim353 by 0.03 between the two trees below). Node V + a is the a-th merge, so
the root is 2V - 2 and inner node n owns row n - V of w_nodes (the root is row V - 2); the lighter of the two
nodes a merge takes gets code 0, the other code 1. Two tie rules:

* ``rule="gensim"`` (the default): gensim 4's construction, a binary heap of the words in vocabulary order
  ordered by count alone (``heapq``; equal counts come out in the heap's own order); O(V log V).
* ``rule="word2vec"``: word2vec.c's two-queue merge, O(V) given counts sorted in descending order: the
  leaves, read from the least frequent end, form one queue; merged nodes, created with non-decreasing
  weights, form the other; each step merges the two lightest heads (a merged node first on a tie).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import torch

from .sampling import check_counts


@dataclass
class HuffmanTree:
    """Paths of every word, root first, padded to the longest code L (at least 1 column).

    points: int64 [V, L] inner-node rows (into w_nodes [V - 1, D]); codes: uint8 [V, L] branch bits;
    lengths: int64 [V] code lengths (0 only when V == 1). Padding entries are 0.
    """

    points: np.ndarray
    codes: np.ndarray
    lengths: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        """Inner nodes: rows of w_nodes (V - 1)."""
        return max(self.points.shape[0] - 1, 0)

    def code(self, word: int) -> list[int]:
        return self.codes[word, : self.lengths[word]].tolist()

    def path(self, word: int) -> list[int]:
        return self.points[word, : self.lengths[word]].tolist()

    def tensors(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(points int64 [V, L], codes uint8 [V, L], lengths int64 [V]) on device, cached."""
        device = torch.device(device)
        if device not in self._cache:
            self._cache[device] = (torch.as_tensor(self.points, device=device),
                                   torch.as_tensor(self.codes, device=device),
                                   torch.as_tensor(self.lengths, device=device))
        return self._cache[device]


class _HeapNode:
    """A heap entry ordered by weight alone, so that ties are broken by the heap's operations, as gensim's."""

    __slots__ = ("weight", "id")

    def __init__(self, weight, node_id):
        self.weight, self.id = weight, node_id

    def __lt__(self, other):
        return self.weight < other.weight


def _merges_heap(c: np.ndarray) -> list[tuple[int, int]]:
    heap = [_HeapNode(w, i) for i, w in enumerate(c.tolist())]
    heapq.heapify(heap)
    merges = []
    for a in range(c.size - 1):
        lo, hi = heapq.heappop(heap), heapq.heappop(heap)
        merges.append((lo.id, hi.id))
        heapq.heappush(heap, _HeapNode(lo.weight + hi.weight, c.size + a))
    return merges


def _merges_two_queue(c: np.ndarray) -> list[tuple[int, int]]:
    V = c.size
    weight = np.concatenate([c, np.full(V - 1, np.inf)]).tolist()
    merges = []
    leaf, merged = V - 1, V  # heads of the two queues (leaves run downwards from the lightest)
    for a in range(V - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and weight[leaf] < weight[merged]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(merged)
                merged += 1
        weight[V + a] = weight[pair[0]] + weight[pair[1]]
        merges.append((pair[0], pair[1]))
    return merges


def build_huffman(counts, rule: str = "gensim") -> HuffmanTree:
    """The Huffman tree of words with these counts (int or float, >= 0, shape [V], V >= 1), ties broken as
    gensim (rule="gensim", O(V log V)) or word2vec.c (rule="word2vec", O(V) when counts are sorted in
    descending order, word2vec's vocabulary order; otherwise they are sorted first and the result is given in
    the caller's order). See the module docstring."""
    c = check_counts(counts)
    if rule not in ("gensim", "word2vec"):
        raise ValueError(f"rule must be 'gensim' or 'word2vec', got {rule!r}")
    if rule == "word2vec" and np.any(c[1:] > c[:-1]):
        order = np.argsort(-c, kind="stable")
        tree = build_huffman(c[order], rule)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        return HuffmanTree(tree.points[inverse], tree.codes[inverse], tree.lengths[inverse])

    V = c.size
    if V == 1:
        return HuffmanTree(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.uint8), np.zeros(1, np.int64))
    parent = [0] * (2 * V - 1)
    bit = [0] * (2 * V - 1)
    for a, (lo, hi) in enumerate(_merges_heap(c) if rule == "gensim" else _merges_two_queue(c)):
        parent[lo] = parent[hi] = V + a
        bit[hi] = 1

    # Depth of every node, top-down: merges were created in order, so a parent always has a larger id.
    depth = [0] * (2 * V - 1)
    for node in range(2 * V - 3, -1, -1):
        depth[node] = depth[parent[node]] + 1
    parent_arr = np.asarray(parent, dtype=np.int64)
    bit_arr = np.asarray(bit, dtype=np.uint8)
    lengths = np.asarray(depth[:V], dtype=np.int64)
    L = int(lengths.max())
    points = np.zeros((V, L), dtype=np.int64)
    codes = np.zeros((V, L), dtype=np.uint8)
    # Walk all leaves up together; the step-th ancestor of a leaf of depth d sits at path position d - 1 - step.
    node = np.arange(V)
    rows = np.arange(V)
    for step in range(L):
        alive = lengths > step
        r, n = rows[alive], node[alive]
        pos = lengths[alive] - 1 - step
        codes[r, pos] = bit_arr[n]
        points[r, pos] = parent_arr[n] - V
        node[alive] = parent_arr[n]
    return HuffmanTree(points, codes, lengths)
