"""fastrepr's contrastive losses against the library a user would otherwise run, in the same process.

    PYTHONPATH=$PWD:/tmp/libs python benchmarks/losses_vs_libraries.py [--two-n 8192] [--dim 128]

Rows: lightly NTXentLoss (plain, and with a memory bank), lightly DCLLoss, open_clip ClipLoss / SigLipLoss,
pytorch-metric-learning NTXentLoss / SupConLoss / CrossBatchMemory. Every row first checks that both sides
give the same value (1e-5 relative) and the same input gradients (1e-4) on the benchmark's inputs: a
benchmark of a wrong answer is worthless, so a mismatching row is printed as such and not timed. Then the
median time of forward, backward (over one retained graph) and forward + backward, alternating ours and
theirs (``fastrepr.bench.harness.time_pair``), and the peak extra RSS of one forward + backward each
(``peak_memory``). Rows whose fastrepr side does not exist yet in this tree (``hasattr`` guards) or whose
library is not importable are listed as skipped, with the reason.

lightly's package __init__ imports torchvision; its loss modules do not need it, so they are loaded under
empty parent packages, with a one-name torchvision.ops stand-in when torchvision is absent (``_lightly``). open_clip's loss.py is loaded by file path for the same reason.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import sys
import types
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import fastrepr
from fastrepr.bench.harness import peak_memory, table, time_pair

CPU = torch.device("cpu")


def _lightly(module: str):
    """lightly.<module> without running lightly/__init__.py (and the torchvision it imports)."""
    spec = importlib.util.find_spec("lightly")
    if spec is None:
        raise ImportError("lightly is not on the path (pip download --no-deps lightly; unzip; add to PYTHONPATH)")
    root = list(spec.submodule_search_locations)[0]
    parts = ["lightly", "lightly.models", "lightly.models.modules", "lightly.utils", "lightly.loss"]
    for name in parts:
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [root + "/" + "/".join(name.split(".")[1:])]
            sys.modules[name] = pkg
    if importlib.util.find_spec("torchvision") is None:  # lightly.models.utils imports one name of it, unused
        ops = types.ModuleType("torchvision.ops")        # by the losses (StochasticDepth, for its ViT models)
        ops.StochasticDepth = None
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision")).ops = ops
        sys.modules.setdefault("torchvision.ops", ops)
    return importlib.import_module(f"lightly.{module}")


def _open_clip_loss():
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        raise ImportError("open_clip is not on the path (pip download --no-deps open_clip_torch; unzip)")
    path = list(spec.submodule_search_locations)[0] + "/loss.py"
    loader = importlib.util.spec_from_file_location("open_clip_loss", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


@dataclass
class Case:
    name: str
    theirs_name: str
    make: Callable[[], tuple[Callable, Callable]]  # -> (ours(inputs) -> loss, theirs(inputs) -> loss)
    inputs: str = "views"  # "views": z1, z2 [N, D]; "labelled": z [2N, D], labels


def _cases(temperature: float, two_n: int, dim: int) -> list[Case]:
    t = temperature
    pair_labels = lambda n: torch.arange(n).repeat(2)  # noqa: E731  (row i of z1 and of z2 share a label)

    def lightly_ntxent():
        theirs = _lightly("loss.ntx_ent_loss").NTXentLoss(temperature=t)
        return (lambda x: fastrepr.nt_xent(x["z1"], x["z2"], t)), (lambda x: theirs(x["z1"], x["z2"]))

    def lightly_ntxent_bank(k=65536):
        def make():
            # lightly 1.6's (K, D) bank is drawn at construction: the same seed gives both the same bank
            torch.manual_seed(1)
            ours = fastrepr.NTXentLoss(temperature=t, memory_bank_size=(k, dim))
            torch.manual_seed(1)
            theirs = _lightly("loss.ntx_ent_loss").NTXentLoss(temperature=t, memory_bank_size=(k, dim))
            return (lambda x: ours(x["z1"], x["z2"])), (lambda x: theirs(x["z1"], x["z2"]))
        return make

    def lightly_dcl():
        if not hasattr(fastrepr, "dcl_loss"):
            raise NotImplementedError("fastrepr.dcl_loss is not in this tree yet")
        theirs = _lightly("loss.dcl_loss").DCLLoss(temperature=t)
        return (lambda x: fastrepr.dcl_loss(x["z1"], x["z2"], t)), (lambda x: theirs(x["z1"], x["z2"]))

    def clip():
        theirs = _open_clip_loss().ClipLoss()
        scale = 1.0 / t
        return ((lambda x: fastrepr.info_nce(x["z1"], x["z2"], t)),
                (lambda x: theirs(F.normalize(x["z1"], dim=1), F.normalize(x["z2"], dim=1), scale)))

    def siglip():
        if not hasattr(fastrepr, "siglip_loss"):
            raise NotImplementedError("fastrepr.siglip_loss is not in this tree yet")
        theirs = _open_clip_loss().SigLipLoss()
        scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
        return ((lambda x: fastrepr.siglip_loss(x["z1"], x["z2"], scale, bias)),
                (lambda x: theirs(F.normalize(x["z1"], dim=1), F.normalize(x["z2"], dim=1), scale, bias)))

    def pml_ntxent():
        if two_n > 1024:  # PML pairs every positive pair with every negative pair: O((2N)^3) memory
            raise MemoryError(f"PML NTXentLoss needs O((2N)^3) memory (2.1 GB RSS measured at 2N=512); "
                              f"run it with --two-n 512, not {two_n}")
        from pytorch_metric_learning.losses import NTXentLoss
        theirs = NTXentLoss(temperature=t)
        return ((lambda x: fastrepr.nt_xent(x["z1"], x["z2"], t)),
                (lambda x: theirs(torch.cat([x["z1"], x["z2"]]), pair_labels(x["z1"].shape[0]))))

    def pml_supcon():
        from pytorch_metric_learning.losses import SupConLoss
        theirs = SupConLoss(temperature=t)
        return (lambda x: fastrepr.sup_con(x["z"], x["labels"], t)), (lambda x: theirs(x["z"], x["labels"]))

    def pml_cross_batch(k=65536):
        def make():
            # Not a timing of the same loss, so not a row: PML's CrossBatchMemory enqueues the batch before the
            # loss, and its negatives for each query are the batch's other rows plus the memory (lightly's bank,
            # which fastrepr.NTXentLoss(memory_bank_size=K) follows: the memory only, enqueued after), so no
            # fastrepr call computes its value. And its NTXentLoss builds a [positive pairs, negative pairs]
            # mask: 2N x 2N·(K + 2N) elements, ~4.6e12 at 2N=8192, K=65536.
            pairs = two_n * two_n * (k + two_n)
            raise NotImplementedError(f"another loss (batch + memory negatives, enqueued first); its NTXentLoss "
                                      f"mask needs {pairs:.1e} elements here")
        return make

    return [Case("nt_xent", "lightly NTXentLoss", lightly_ntxent),
            Case("nt_xent bank=65536", "lightly NTXentLoss(memory_bank_size=65536)", lightly_ntxent_bank()),
            Case("dcl_loss", "lightly DCLLoss", lightly_dcl),
            Case("info_nce", "open_clip ClipLoss", clip),
            Case("siglip_loss", "open_clip SigLipLoss", siglip),
            Case("nt_xent", "PML NTXentLoss", pml_ntxent),
            Case("sup_con", "PML SupConLoss", pml_supcon, inputs="labelled"),
            Case("nt_xent bank=65536", "PML CrossBatchMemory(NTXentLoss)", pml_cross_batch())]


def _inputs(kind: str, two_n: int, dim: int) -> dict:
    torch.manual_seed(0)
    if kind == "views":
        z1, z2 = (torch.randn(two_n // 2, dim, requires_grad=True) for _ in range(2))
        return {"z1": z1, "z2": z2, "leaves": (z1, z2)}
    z = torch.randn(two_n, dim, requires_grad=True)
    return {"z": z, "labels": torch.randint(0, two_n // 8, (two_n,)), "leaves": (z,)}


def _grads(fn, x):
    for t in x["leaves"]:
        t.grad = None
    loss = fn(x)
    loss.backward()
    return loss.detach(), [t.grad.clone() for t in x["leaves"]]


def _agree(ours, theirs, x) -> str:
    """"" when value (1e-5 rel) and input gradients (1e-4 rel, 1e-7 abs) agree, else what differs."""
    lo, go = _grads(ours, x)
    lt, gt = _grads(theirs, x)
    if not torch.allclose(lo.double(), lt.double(), rtol=1e-5, atol=0):
        return f"value {lo.item():.8g} vs {lt.item():.8g}"
    for a, b in zip(go, gt):
        if not torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-7):
            return f"gradient max diff {(a - b).abs().max().item():.3g}"
    return ""


def _phases(fn, x):
    def fwd():
        return fn(x)

    def fwd_bwd():
        for t in x["leaves"]:
            t.grad = None
        fn(x).backward()

    graph = {}

    def bwd():
        if "loss" not in graph:
            graph["loss"] = fn(x)
        for t in x["leaves"]:
            t.grad = None
        graph["loss"].backward(retain_graph=True)
    return {"forward": fwd, "backward": bwd, "fwd+bwd": fwd_bwd}


def run(two_n: int, dim: int, temperature: float, budget_s: float, only: str | None) -> list[list[str]]:
    rows = []
    for case in _cases(temperature, two_n, dim):
        label = f"{case.name} vs {case.theirs_name}"
        if only and only not in label:
            continue
        try:
            ours, theirs = case.make()
        except (ImportError, NotImplementedError, MemoryError, ValueError, TypeError) as e:
            rows.append([case.name, case.theirs_name, "skipped", f"{type(e).__name__}: {e}"[:90]] + [""] * 5)
            continue
        x = _inputs(case.inputs, two_n, dim)
        why = _agree(ours, theirs, x)
        if why:
            rows.append([case.name, case.theirs_name, "MISMATCH", why] + [""] * 5)
            continue
        mine, base = _phases(ours, x), _phases(theirs, x)
        times = []
        for phase in ("forward", "backward", "fwd+bwd"):
            o, b = time_pair(mine[phase], base[phase], CPU, budget_s)
            times.append(f"{o:.1f} / {b:.1f} ({b / o:.2f}x)")
        peak_o = peak_memory(mine["fwd+bwd"], CPU) / 2**20
        peak_b = peak_memory(base["fwd+bwd"], CPU) / 2**20
        rows.append([case.name, case.theirs_name, "equal", "value 1e-5, grads 1e-4"] + times
                    + [f"{peak_o:.1f}", f"{peak_b:.1f}"])
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--two-n", type=int, default=8192)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--budget", type=float, default=1.0, help="seconds per side and phase (at least 5 calls)")
    p.add_argument("--only", help="run the rows whose label contains this text")
    a = p.parse_args(argv)
    rows = run(a.two_n, a.dim, a.temperature, a.budget, a.only)
    print(f"2N={a.two_n} D={a.dim} fp32, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; times ms ours / theirs (speed-up)")
    print(table(["ours", "theirs", "check", "detail", "forward", "backward", "fwd+bwd", "peak MB ours",
                 "peak MB theirs"], rows))


if __name__ == "__main__":
    main()
