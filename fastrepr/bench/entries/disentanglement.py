"""The whole disentanglement suite as one entry: dSprites images, the 10-dim ``moments`` representation,
every metric with N points (N/2 for tests), ours (``fastrepr.evaluation.disentanglement.evaluate``) against
the numpy/scikit-learn implementation of disentanglement_lib's algorithms. No default sizes (the reference
takes minutes): run it as ``fastrepr bench --op disentanglement_suite --sizes 2000``; the study sizes, metric
by metric, are ``fastrepr disentangle --representation moments --compare-reference``."""
from __future__ import annotations

import warnings

import torch

from fastrepr.evaluation import disentanglement, suite

from ..harness import Bench


def _setup(size, device, dtype):
    (n,) = size
    device = torch.device(device)
    data, rep = suite.setup("moments", "images", device=str(device), as_tensor=device.type == "cuda")
    cfg = {m: {k: (n if k in ("num_train", "num_variance_estimate") else n // 2) for k in kw}
           for m, kw in suite.config("study").items()}
    return {"probe": torch.zeros(1, device=device), "data": data, "rep": rep, "cfg": cfg}


def _reference(x):
    with warnings.catch_warnings():  # scikit-learn's convergence chatter
        warnings.simplefilter("ignore")
        return suite.evaluate_reference(x["data"], x["rep"], config=x["cfg"])


def _ours(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return disentanglement.evaluate(x["data"], x["rep"], config=x["cfg"])


def entries() -> list[Bench]:
    return [Bench(op="disentanglement_suite", baseline_name="numpy/sklearn, disentanglement_lib's algorithms",
                  size_names=("N",), sizes={"cpu": [], "cuda": []}, setup=_setup, ours=_ours, baseline=_reference,
                  test_size=(1000,))]  # smaller: a test split can miss a class (disentanglement_lib raises)
