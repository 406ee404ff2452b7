"""Argument checks shared by every op: each raises ValueError/TypeError naming the argument and what was
expected. They look only at metadata (shape, dtype, device), so they also run on fake tensors under
torch.compile; data-dependent checks (index ranges, NaN) live inside the ops."""
from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def floating(x, name: str) -> torch.Tensor:
    tensor(x, name)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    return x


def integer(x, name: str) -> torch.Tensor:
    tensor(x, name)
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (int64 or int32), got {x.dtype}")
    return x


def ndim(x: torch.Tensor, n: int, name: str, layout: str) -> torch.Tensor:
    if x.dim() != n:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(x.shape)}")
    return x


def nonempty(x: torch.Tensor, name: str, layout: str) -> torch.Tensor:
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}; expected {layout} with every size >= 1)")
    return x


def same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"tensors must be on one device, got {listed}")


def same_dtype(**tensors: torch.Tensor) -> None:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise TypeError(f"tensors must share one dtype, got {listed}")
