"""Running top-k lists, shared by the search and analogy ops and the word benchmarks: one accumulator object
(``TopK``, as faiss's ``contrib.exhaustive_search.ResultHeap``), the Triton merge its lists go through inside
the kernels, and the launch geometry both kernels use.

Ranking, everywhere: higher score first; equal scores keep the lower id first; -inf never ranks (slots left
empty finalize to (-inf, -1)). Empty slots hold distinct ids -1 - slot, so that "the worst slot" (lowest score,
then highest id) is always a single slot in the Triton merge.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _native
from .._triton import tl, triton

# kernel-side constants (Triton reads globals only when they are constexpr)
NEG_INF = tl.constexpr(float("-inf"))
INT_MIN = tl.constexpr(-2147483647)  # below every padding id (-1 - slot)
INT_BIG = tl.constexpr(2147483647)  # above every row id
_INT64_MAX = torch.iinfo(torch.int64).max

# KP = next_pow2(k) of the compile cases (tests/test_gpu_compile.py); the launchers take any k, and above 1024
# the lists held in registers (KP scores and ids per query row) grow with it
COMPILE_KP = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@triton.jit
def worst_slot(top_v, top_i):
    """The slot each row would give up next: the lowest score; among equal scores, the highest id."""
    worst_v = tl.min(top_v, axis=1)
    worst_i = tl.max(tl.where(top_v == worst_v[:, None], top_i, INT_MIN), axis=1)
    return worst_v, worst_i


@triton.jit
def merge_topk(s, cols, top_v, top_i):
    """Fold a score tile s [BQ, BV] (columns ``cols`` [1, BV] int32, masked entries -inf) into the running
    lists (top_v, top_i) [BQ, KP] held in registers.

    While some row's tile maximum beats that row's worst kept score, every row moves its maximum (lowest
    column among equal maxima) into its worst slot when it is better, and drops it from the tile. Tiles come
    in increasing column order, so an equal score never displaces a kept one: ties keep the lower row. Each
    row takes at most KP elements per tile; after the first tiles most tiles need no iteration at all.
    """
    m = tl.max(s, axis=1)
    worst_v, worst_i = worst_slot(top_v, top_i)
    go = tl.max((m > worst_v).to(tl.int32), axis=0)
    while go > 0:
        ci = tl.min(tl.where(s == m[:, None], cols, INT_BIG), axis=1)
        hit = (m > worst_v)[:, None] & (top_v == worst_v[:, None]) & (top_i == worst_i[:, None])
        top_v = tl.where(hit, m[:, None], top_v)
        top_i = tl.where(hit, ci[:, None], top_i)
        s = tl.where(cols == ci[:, None], NEG_INF, s)
        m = tl.max(s, axis=1)
        worst_v, worst_i = worst_slot(top_v, top_i)
        go = tl.max((m > worst_v).to(tl.int32), axis=0)
    return top_v, top_i


def cdiv(a: int, b: int) -> int:
    """Ceiling division (also without triton installed)."""
    return -(-int(a) // int(b))


def splits_for(q_blocks: int, rows: int, block_v: int, device: torch.device) -> int:
    """How many column ranges (list parts) to split over so that about 4 programs per SM run (1 without a GPU)."""
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(cdiv(4 * sms, q_blocks), cdiv(rows, block_v)))


def chunk_rows(rows: int, other: int, budget_bytes: int, multiple: int) -> int:
    """Chunk length C (a multiple of `multiple`) so that an [other, C] float32 tile stays near budget_bytes."""
    c = max(multiple, (budget_bytes // (4 * max(other, 1))) // multiple * multiple)
    return min(c, cdiv(rows, multiple) * multiple)


def unique_inverse(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.unique(x, return_inverse=True); on CPU through numpy, which is many times faster there."""
    if x.is_cuda:
        return torch.unique(x, return_inverse=True)
    values, inverse = np.unique(x.numpy(), return_inverse=True)
    return torch.from_numpy(values), torch.from_numpy(inverse.reshape(x.shape))


def _ranked(v: torch.Tensor, i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best (score, id) pairs of each row of v, i [n, m], sorted (score descending, lower id first; -inf
    last). Two stable sorts: by id, then by score, so equal scores stay in id order."""
    key = torch.where(torch.isneginf(v), torch.full_like(i, _INT64_MAX, dtype=torch.int64), i.long())
    by_id = torch.argsort(key, dim=1, stable=True)
    v, i = v.gather(1, by_id), i.gather(1, by_id)
    by_score = torch.argsort(v, dim=1, descending=True, stable=True)[:, :k]
    return v.gather(1, by_score), i.gather(1, by_score)


class TopK:
    """The k best (score, id) pairs of each of n rows, fed block by block.

    ``TopK(n, k)``: sorted lists [n, k] (``push`` from PyTorch; the C++ ``topk_merge`` through ``push_tile``).
    ``TopK(n, k, parts=S, width=KP, index_dtype=torch.int32)``: S unsorted partial lists of KP slots per row
    ([n, S, KP], the layout the Triton kernels read and write in place through ``scores`` / ``ids``).
    ``finalize()`` -> (scores [n, k], ids [n, k] int64), sorted by the ranking of the module docstring, empty
    slots (-inf, -1). Memory: the lists, n·S·width scores and ids; ``push`` adds one [n, width + C] sort.
    """

    def __init__(self, n: int, k: int, device=None, *, parts: int | None = None, width: int | None = None,
                 dtype: torch.dtype = torch.float32, index_dtype: torch.dtype = torch.int64):
        self.k = int(k)
        width = self.k if width is None else int(width)
        shape = (n, width) if parts is None else (n, parts, width)
        self.scores = torch.full(shape, float("-inf"), dtype=dtype, device=device)
        self.ids = (-1 - torch.arange(width, dtype=index_dtype, device=device)).expand(shape).contiguous()

    def push(self, scores: torch.Tensor, ids: torch.Tensor) -> None:
        """Fold a block of scores [n, C] with ids [C] (shared by every row) or [n, C] into the sorted lists."""
        if self.scores.dim() != 2:
            raise RuntimeError("push needs the sorted [n, k] lists (these are Triton's partial lists)")
        n, width = self.scores.shape
        v = torch.cat([self.scores, scores.to(self.scores.dtype)], 1)
        i = torch.cat([self.ids, ids.to(self.ids.dtype).expand(n, scores.shape[1])], 1)
        self.scores, self.ids = _ranked(v, i, width)

    def push_tile(self, S: torch.Tensor, rows: torch.Tensor, scale: torch.Tensor, mode: int, excl: torch.Tensor,
                  col0: int) -> None:
        """Fold the score tile of columns [col0, col0 + S.shape[1]) into the sorted float32 lists in place, in C++
        (``topk_merge``, OpenMP over rows; mode 0: row rows[q, 0] of S; 1: 3CosAdd; 2: 3CosMul of rows[q] =
        (a, b, c) of S, times scale[q] for 3CosAdd; excl [n, E] ids never kept)."""
        _native.get().topk_merge(_native.as_buffer(S), _native.as_buffer(rows), _native.as_buffer(scale), mode,
                                 _native.as_buffer(excl), col0, self.scores.numpy(), self.ids.numpy(),
                                 torch.get_num_threads())

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [n, k], ids [n, k] int64), best first; empty slots (-inf, -1)."""
        n = self.scores.shape[0]
        v, i = _ranked(self.scores.reshape(n, -1), self.ids.reshape(n, -1), self.k)
        i = torch.where(torch.isneginf(v), torch.full_like(i, -1, dtype=torch.int64), i.long())
        return v.contiguous(), i.contiguous()


def empty_result(like: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([n, k] float32 scores, [n, k] int64 ids) on like's device, for calls without queries."""
    return like.new_empty((n, k), dtype=torch.float32), like.new_empty((n, k), dtype=torch.int64)
