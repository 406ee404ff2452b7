"""Pieces shared by the two log-sigmoid losses of word2vec, ``ops/negative_sampling.py`` and
``ops/hierarchical_softmax.py``: the numerically safe log-sigmoid, the kernels' launch flags and row tiling,
their compile launches, and the index and non-finite checks of their custom ops.

Both losses are sums of log sigmoid(±s) over gathered rows, and both kernels run in one of four launches named
by constexpr flags (never a bare mode integer):

    launch            HAS_GRAD  SPARSE  STEP   writes
    FORWARD           False     False   False  the loss only
    BACKWARD_DENSE    True      False   False  gradients scatter-added (atomics) into [V, D] tables
    BACKWARD_SPARSE   True      True    False  one gradient row per gathered index
    SGD_STEP          True      False   True   -lr · gradient added into the weights themselves (Hogwild)
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import _checks
from .._triton import next_power_of_2, tl, triton
from ._precision import acc_dtype

FORWARD = dict(HAS_GRAD=False, SPARSE=False, STEP=False)
BACKWARD_DENSE = dict(HAS_GRAD=True, SPARSE=False, STEP=False)
BACKWARD_SPARSE = dict(HAS_GRAD=True, SPARSE=True, STEP=False)
SGD_STEP = dict(HAS_GRAD=True, SPARSE=False, STEP=True)
LAUNCHES = (FORWARD, BACKWARD_DENSE, BACKWARD_SPARSE, SGD_STEP)


@triton.jit
def log_sigmoid(x):
    """log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|)): no overflow for large |x| of either sign."""
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


def acc_constexpr(dtype: torch.dtype):
    """The kernels' ACC constexpr for tables of ``dtype`` (fastrepr.ops._precision.acc_dtype as a tl type)."""
    return tl.float64 if acc_dtype(dtype) == torch.float64 else tl.float32


def row_tiles(D: int) -> tuple[int, int]:
    """(BLOCK_B, BLOCK_D) of both word2vec kernels: whole rows, about 4096 elements per tile. Untuned (no GPU
    was available when this was written), 4 warps."""
    block_d = next_power_of_2(D)
    return max(1, min(64, 4096 // block_d)), block_d


def compile_launches():
    """(tables' dtype, accumulation dtype, D, constexprs) of both word2vec kernels' compile cases
    (tests/test_gpu_compile.py): every float dtype, each launch, and each row tiling from 64 x 8 to 1 x 4096
    (the launchers take any D; above 4096 the tile, and the registers, grow with D)."""
    for dt in _checks.FLOAT_DTYPES:
        acc = acc_dtype(dt)
        for D in (8, 32, 64, 256, 1024, 4096):
            block_b, block_d = row_tiles(D)
            for launch in LAUNCHES:
                yield dt, acc, D, dict(launch, ACC=acc_constexpr(dt), BLOCK_B=block_b, BLOCK_D=block_d)


def unit_columns(t: torch.Tensor) -> torch.Tensor:
    """t, or a contiguous copy when its last dimension does not have unit stride (the kernels need it)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def mask_u8(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A context mask as contiguous uint8 (what the kernels read), or None."""
    return None if mask is None else mask.to(torch.uint8).contiguous()


def check_index(name: str, idx: torch.Tensor, n: int, table: str) -> None:
    """ValueError naming the argument when idx has an entry outside [0, n) (one host sync)."""
    if idx.numel() == 0:
        return
    lo, hi = torch.aminmax(idx)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= n:
        raise ValueError(f"{name} has indices in [{lo}, {hi}], outside [0, {n}) (rows of {table})")


def check_loss(loss: torch.Tensor, reads, what: str) -> torch.Tensor:
    """loss, unless it has a non-finite entry: then ValueError naming the first table whose rows read by the
    batch hold NaN/Inf (reads(): name -> (table, row indices)), or else the overflow (`what` names the scores).
    O(B) and no allocation when the loss is finite; the rows are gathered only to explain a failure."""
    if not _checks.data_checks(loss) or _checks.all_finite(loss):
        return loss
    for name, (table, rows) in reads().items():
        rows = rows.reshape(-1).unique()
        bad = ~torch.isfinite(table[rows]).all(1)
        if bool(bad.any()):
            raise ValueError(f"{name} contains NaN or Inf in row {int(rows[bad][0])}, which this batch reads")
    kind = str(loss.dtype).replace("torch.", "")
    raise ValueError(f"{what} overflow {kind} for this batch (every row it reads is finite, but too large)")
