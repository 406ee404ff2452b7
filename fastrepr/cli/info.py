"""``fastrepr info``: versions, the device, which backends and optional pieces are usable here (with the reason
for each missing one); ``--ops``: the table of op x implementation x available-here (``_backend.table()``)."""
from __future__ import annotations

import importlib
import pkgutil
import platform

import torch

HELP = "versions, device, and which backends and optional pieces are available (--ops: per op)"


def add_arguments(p) -> None:
    p.add_argument("--ops", action="store_true",
                   help="the table of op x implementation x available here, with the reason when not")


def info_lines() -> list[str]:
    """What is installed and usable here, with the reason for each missing piece."""
    from .. import __version__, _backend, _native, _triton

    import numpy

    lines = [f"fastrepr {__version__}",
             f"python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}"]
    if torch.cuda.is_available():
        lines.append(f"device: cuda ({torch.cuda.get_device_name()}, {torch.cuda.device_count()} visible)")
    else:
        lines.append(f"device: cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)")

    def row(name: str, ok: bool, detail: str) -> str:
        return f"  {name:<10} {'yes' if ok else 'no ':<4} {detail}"

    lines.append("backends:")
    ok, why = _backend.available("triton")
    if ok:
        import triton

        mode = "compiled for CUDA" if _triton.HAS_CUDA and not _triton.INTERPRET else "interpreter (TRITON_INTERPRET=1)"
        lines.append(row("triton", True, f"{triton.__version__}, {mode}"))
    else:
        lines.append(row("triton", False, why))
    ok, why = _native.available()
    lines.append(row("native", ok, f"fastrepr._C, OpenMP {'on' if _native.get().openmp else 'off'}" if ok else why))
    lines.append(row("torch", True, "plain-PyTorch reference (always available)"))
    forced = _backend.forced()
    lines.append(f"  selection: {'forced by FASTREPR_BACKEND=' + forced if forced else 'triton for CUDA tensors, native for CPU tensors, else torch'}")

    lines.append("optional:")
    lines.append(row("CUDA", torch.cuda.is_available(),
                     torch.version.cuda and f"CUDA {torch.version.cuda}" if torch.cuda.is_available()
                     else "torch.cuda.is_available() is False" + ("" if torch.version.cuda else " (CPU build of torch)")))
    try:
        import faiss

        lines.append(row("faiss", True, faiss.__version__))
        n_gpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        has_gpu = hasattr(faiss, "StandardGpuResources")
        lines.append(row("faiss GPU", has_gpu and n_gpu > 0,
                         f"{n_gpu} GPU(s)" if has_gpu and n_gpu > 0 else
                         ("faiss has GPU support but sees no GPU" if has_gpu else
                          "faiss is built without GPU support (pip install 'fastrepr[gpu]' for faiss-gpu)")))
    except Exception as exc:
        lines.append(row("faiss", False, f"not importable ({exc}); pip install faiss-cpu"))
        lines.append(row("faiss GPU", False, "faiss is not installed"))
    return lines


def ops_table() -> str:
    """``_backend.table()`` as text, after importing every op module (each declares its IMPLS on import)."""
    from .. import _backend, ops
    from ..bench.harness import table

    for mod in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"{ops.__name__}.{mod.name}")
    rows = _backend.table()
    if not rows:
        return "no op declares its implementations through fastrepr._backend.declare yet"
    body = [[op, impl, "yes" if ok else "no", why] for op, impl, ok, why in rows]
    return table(["op", "implementation", "available here", "why not"], body)


def main(args) -> int:
    print(ops_table() if getattr(args, "ops", False) else "\n".join(info_lines()))
    return 0
