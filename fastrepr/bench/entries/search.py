"""Benchmark entries of search and the evaluations built on it (word analogies, kNN probes): they share the
index and vector set-ups, so they live in one module.

  analogy_eval      evaluate_word_analogies vs gensim's, same vectors, first Q questions of the Google set (CPU)
  analogy_3cosadd   EmbeddingIndex.analogy vs plain PyTorch (unit(b+c-a) @ U^T, mask a/b/c, topk), Q questions
  analogy_3cosmul   the same with 3CosMul (the baseline forms its three cosine matrices per question block)
  most_similar      batched EmbeddingIndex.search (one query per word, itself excluded) vs gensim's most_similar
                    loop on CPU, vs PyTorch matmul+topk on CUDA
  knn_probe         knn_accuracy (cosine, k=20) vs scikit-learn's KNeighborsClassifier(metric="cosine")
  search_faiss      EmbeddingIndex.search (metric "ip", unit rows) vs faiss.IndexFlatIP.search, the grid of
                    issue 11: Q in {1, 16, 200, 1000, 5000}, k in {10, 100}, V in {1e5, 1e6}, D in {128, 300}
  search_gemm       the same search vs the fastest GEMM of its shape found here (torch's BLAS or numpy's, in
                    tiles or whole, into preallocated outputs): speed-up = the fraction of that GEMM reached
  knn_faiss         knn_accuracy (cosine, k=20) vs FAISS IndexFlatIP on normalized rows + a numpy vote
  analogy_faiss     EmbeddingIndex.analogy (3CosAdd, top 1) vs FAISS: one query unit(b + c - a) per question,
                    k + 3 results, a/b/c dropped; W=0: the Google set's questions (905 distinct words), else
                    Q random questions over W distinct words
Rows of the *_faiss / search_gemm entries name the path that ran (engine, scan path, its BLAS) and the
baseline's BLAS; the CSV's device column names the CPU.

Vocabularies are synthetic (``synthetic.analogy_vectors``: the Google set's words among distractors), so the
question words and their sharing are those of the real set.
"""
from __future__ import annotations

import importlib.util
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from fastrepr.evaluation import words
from fastrepr.evaluation.probes import knn_accuracy
from fastrepr.evaluation.synthetic import analogy_vectors, read_questions
from fastrepr.ops import analogy_topk
from fastrepr.search import EmbeddingIndex

from ..harness import Bench

_QUESTIONS: dict[int, Path] = {}
_TMP: list = []  # one TemporaryDirectory per process, removed when the interpreter exits


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _questions(n: int) -> Path:
    """The first n questions of the Google set (with their section headers) in a temporary file of this
    process (written once; its directory is removed at exit; no other process reads it)."""
    if n not in _QUESTIONS:
        kept, count = [], 0
        for line in words.bundled("questions-words.txt").read_text().splitlines(keepends=True):
            if not line.startswith(": "):
                if count >= n:
                    break
                count += 1
            kept.append(line)
        if not _TMP:
            _TMP.append(tempfile.TemporaryDirectory(prefix="fastrepr-bench-"))
        path = Path(_TMP[0].name) / f"questions-{n}.txt"
        path.write_text("".join(kept))
        _QUESTIONS[n] = path
    return _QUESTIONS[n]


def _table(size, device, dtype):
    V, D, Q = size
    arr, keys = analogy_vectors(V, D)
    index = EmbeddingIndex(torch.from_numpy(arr).to(device), keys)
    pos = {k: i for i, k in enumerate(keys)}
    quads = [q for _, q in read_questions(words.bundled("questions-words.txt"))[1]][:Q]
    ids = torch.tensor([[pos[w] for w in q[:3]] for q in quads], device=device)
    return {"vectors": index.vectors, "index": index, "keys": keys, "arr": arr, "ids": ids}


def _eval_setup(size, device, dtype):
    x = _table(size, device, dtype)
    from gensim.models import KeyedVectors

    kv = KeyedVectors(x["arr"].shape[1])
    kv.add_vectors(x["keys"], x["arr"])
    x.update(kv=kv, path=_questions(size[2]))
    return x


def _torch_analogy(x, method: str, k: int = 1, block: int = 2048):
    """What a PyTorch user writes: scores for a block of questions, a/b/c masked, topk."""
    u = torch.nn.functional.normalize(x["vectors"], dim=1)
    ids, out = x["ids"], []
    for lo in range(0, ids.shape[0], block):
        w = ids[lo:lo + block]
        if method == "3cosadd":
            s = torch.nn.functional.normalize(u[w[:, 1]] + u[w[:, 2]] - u[w[:, 0]], dim=1) @ u.T
        else:
            ca, cb, cc = ((1 + u[w[:, t]] @ u.T) / 2 for t in range(3))
            s = cb * cc / (ca + 1e-6)
        s.scatter_(1, w, float("-inf"))
        out.append(s.topk(k, dim=1).indices)
    return torch.cat(out)


def _search_setup(size, device, dtype):
    V, D, Q = size
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(V, D, generator=g).to(device)
    keys = [f"w{i}" for i in range(V)]
    x = {"vectors": vectors, "index": EmbeddingIndex(vectors, keys), "keys": keys,
         "rows": torch.randperm(V, generator=g)[:Q].to(device)}
    if device.type == "cpu" and _has("gensim"):
        from gensim.models import KeyedVectors

        x["kv"] = KeyedVectors(D)
        x["kv"].add_vectors(keys, vectors.numpy())
        x["kv"].fill_norms()
    return x


def _search_ours(x, k: int = 10):
    rows = x["rows"]
    return x["index"].search(x["index"].unit_vectors()[rows], k, exclude=rows[:, None])


def _search_baseline(x, k: int = 10):
    if "kv" in x:
        return [x["kv"].most_similar(x["keys"][r], topn=k) for r in x["rows"].tolist()]
    u = torch.nn.functional.normalize(x["vectors"], dim=1)
    s = u[x["rows"]] @ u.T
    s.scatter_(1, x["rows"][:, None], float("-inf"))
    return s.topk(k, dim=1)


def _knn_setup(size, device, dtype):
    n_train, n_test, D = size
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, D, generator=g) * 0.4
    ytr, yte = torch.randint(0, 10, (n_train,), generator=g), torch.randint(0, 10, (n_test,), generator=g)
    xtr = centers[ytr] + torch.randn(n_train, D, generator=g)
    xte = centers[yte] + torch.randn(n_test, D, generator=g)
    return {"xtr": xtr.to(device), "ytr": ytr.to(device), "xte": xte.to(device), "yte": yte.to(device),
            "np": [t.numpy() for t in (xtr, ytr, xte, yte)]}


def _knn_baseline(x):
    from sklearn.neighbors import KNeighborsClassifier

    xtr, ytr, xte, yte = x["np"]
    return KNeighborsClassifier(20, metric="cosine", algorithm="brute").fit(xtr, ytr).score(xte, yte)


# ---------------------------------------------------------------------------------------------------------
# against FAISS (issue 11)

def _faiss_name(what: str) -> str:
    """'faiss 1.15.1 <what> (OpenBLAS 0.3.x)': the BLAS inside the faiss wheel, as threadpoolctl reports it."""
    import faiss

    blas = ""
    try:
        from threadpoolctl import ThreadpoolController

        libs = [x for x in ThreadpoolController().info() if "faiss" in x.get("filepath", "")
                and x.get("user_api") == "blas"]
        if libs:
            blas = f" ({libs[0].get('internal_api', 'blas')} {libs[0].get('version', '')})"
    except Exception:
        pass
    return f"faiss {faiss.__version__} {what}{blas}"


def _unit_rows(V, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(V, D, generator=g), dim=1)


def _flat(vectors: torch.Tensor):
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())  # the same threads as ours
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors.numpy())
    return flat


def _search_faiss_setup(size, device, dtype):
    V, D, Q, k = size
    vectors = _unit_rows(V, D)
    queries = torch.randn(Q, D, generator=torch.Generator().manual_seed(1))
    index = EmbeddingIndex(vectors, metric="ip")
    return {"vectors": vectors, "queries": queries, "q": queries.numpy(), "k": k, "index": index,
            "flat": _flat(vectors), "path": index.search_path(Q, k)}


def _gemm_setup(size, device, dtype):
    """The search inputs plus the fastest GEMM of the search's shape found here (no selection), each timed
    twice: torch.mm (torch's BLAS) or np.matmul (numpy's) in [Q, 4096] or [Q, 32768] tiles written into one
    preallocated buffer, or numpy's whole [Q, V] product into a preallocated output (when it is at most 2 GB:
    on the 2-core AMD EPYC of issue 11 that was the fastest, 2.00 s at Q = 5000, D = 300 against 3.46 s in
    [Q, 4096] tiles)."""
    V, D, Q = size
    x = _search_faiss_setup((V, D, Q, 10), device, dtype)
    v, q = x["vectors"], x["queries"]
    vn, qn = v.numpy(), q.numpy()

    def blocked(mm, C):
        tile = torch.empty(Q, C) if mm is torch.mm else np.empty((Q, C), np.float32)
        a, b = (q, v) if mm is torch.mm else (qn, vn)

        def run():
            for c0 in range(0, V - C + 1, C):
                mm(a, b[c0:c0 + C].T, out=tile)
            if V % C:
                mm(a, b[V - V % C:].T, out=tile[:, :V % C])
        return run

    candidates = {"torch [Q, 4096]": blocked(torch.mm, 4096), "numpy [Q, 4096]": blocked(np.matmul, 4096),
                  "numpy [Q, 32768]": blocked(np.matmul, min(V, 32768))}
    if Q * V * 4 <= 2 ** 31:
        whole = np.empty((Q, V), np.float32)
        candidates["numpy [Q, V]"] = lambda: np.matmul(qn, vn.T, out=whole)
    import time

    best = {}
    for name, fn in candidates.items():
        fn()
        best[name] = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    x["gemm_name"] = min(best, key=best.get)
    x["gemm"] = candidates[x["gemm_name"]]
    return x


def _knn_faiss_baseline(x):
    """FAISS + a numpy vote, as a FAISS user writes the cosine kNN probe."""
    xtr, ytr, xte, yte = x["np"]
    a = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    b = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    flat = _flat(torch.from_numpy(a))
    _, ids = flat.search(b, 20)
    classes, inv = np.unique(ytr, return_inverse=True)
    counts = (inv[ids][:, :, None] == np.arange(len(classes))).sum(1)
    return float((classes[counts.argmax(1)] == yte).mean())


def _analogy_faiss_setup(size, device, dtype):
    V, D, Q, W = size
    if W == 0:  # the Google set's questions and words, planted among distractors
        x = _table((V, D, Q), device, dtype)
        unit = x["index"].unit_vectors()
    else:
        unit = _unit_rows(V, D, seed=3)
        g = torch.Generator().manual_seed(4)
        words = torch.randperm(V, generator=g)[:W]
        ids = words[torch.randint(0, W, (Q, 3), generator=g)]
        x = {"index": EmbeddingIndex(unit), "ids": ids}
    x["flat"] = _flat(unit)
    x["unit"] = unit
    x["path"] = "3cosadd " + _analogy_route(x["index"], x["ids"])
    return x


def _analogy_route(index, ids) -> str:
    W = int(torch.unique(ids).numel())
    route = analogy_topk.cosadd_route(ids.shape[0], W, len(index), index.dim)
    return f"{route} (W={W})" + (f", {index.search_path(ids.shape[0], 4)}" if route == "search" else "")


def _analogy_faiss_baseline(x):
    u, ids = x["unit"], x["ids"]
    q = torch.nn.functional.normalize(u[ids[:, 1]] + u[ids[:, 2]] - u[ids[:, 0]], dim=1).numpy()
    _, found = x["flat"].search(q, 4)
    found = torch.from_numpy(found)
    keep = ~(found[:, :, None] == ids[:, None, :]).any(-1)
    return found.gather(1, keep.int().argmax(1, keepdim=True))  # the best row that is not a, b or c


_SEARCH_GRID = [(V, D, Q, k) for V in (100_000, 1_000_000) for D in (128, 300) for k in (10, 100)
                for Q in (1, 16, 200, 1000, 5000)]


def entries() -> list[Bench]:
    out = []
    if _has("gensim"):
        out.append(Bench(
            op="analogy_eval", baseline_name="gensim evaluate_word_analogies",
            size_names=("V", "D", "Q"), sizes={"cpu": [(30_000, 100, 2_000), (100_000, 300, 500)]},
            setup=_eval_setup,
            ours=lambda x: words.evaluate_word_analogies(x["index"], x["path"]),
            baseline=lambda x: x["kv"].evaluate_word_analogies(str(x["path"])),
            work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q"))
    for method in ("3cosadd", "3cosmul"):
        out.append(Bench(
            op=f"analogy_{method}", baseline_name="torch matmul+topk",
            size_names=("V", "D", "Q"),
            sizes={"cpu": [(30_000, 100, 4_000)], "cuda": [(100_000, 300, 19_544), (300_000, 300, 19_544)]},
            setup=_table,
            ours=lambda x, m=method: x["index"].analogy(x["ids"][:, 0], x["ids"][:, 1], x["ids"][:, 2], m),
            baseline=lambda x, m=method: _torch_analogy(x, m),
            work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q"))
    out.append(Bench(
        op="most_similar", baseline_name="gensim most_similar loop (CPU) / torch matmul+topk (CUDA)",
        size_names=("V", "D", "Q"), sizes={"cpu": [(100_000, 300, 200)], "cuda": [(300_000, 300, 2_000)]},
        setup=_search_setup, ours=_search_ours, baseline=_search_baseline,
        work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q"))
    if _has("sklearn"):
        out.append(Bench(
            op="knn_probe", baseline_name="sklearn KNeighborsClassifier(cosine, brute)",
            size_names=("Ntrain", "Ntest", "D"), sizes={"cpu": [(50_000, 10_000, 128)]},
            setup=_knn_setup,
            ours=lambda x: knn_accuracy(x["xtr"], x["ytr"], x["xte"], x["yte"], k=20),
            baseline=_knn_baseline,
            work=lambda s: s[0] * s[1] * s[2], work_label="Ntrain·Ntest·D"))
    if not _has("faiss"):
        return out
    out.append(Bench(
        op="search_faiss", baseline_name=_faiss_name("IndexFlatIP"), size_names=("V", "D", "Q", "k"),
        sizes={"cpu": _SEARCH_GRID}, setup=_search_faiss_setup,
        ours=lambda x: x["index"].search(x["queries"], x["k"]), baseline=lambda x: x["flat"].search(x["q"], x["k"]),
        work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q", describe=lambda x: x["path"]))
    out.append(Bench(
        op="search_gemm", baseline_name="fastest float32 GEMM of the same shape (no selection)",
        size_names=("V", "D", "Q"), sizes={"cpu": [(100_000, 300, 1000), (100_000, 300, 5000), (300_000, 128, 2000)]},
        setup=_gemm_setup, ours=lambda x: x["index"].search(x["queries"], 10), baseline=lambda x: x["gemm"](),
        work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q",
        describe=lambda x: f"{x['path']}; GEMM: {x['gemm_name']}"))
    out.append(Bench(
        op="knn_faiss", baseline_name=_faiss_name("IndexFlatIP + numpy vote"), size_names=("Ntrain", "Ntest", "D"),
        sizes={"cpu": [(50_000, 10_000, 128)]}, setup=_knn_setup,
        ours=lambda x: knn_accuracy(x["xtr"], x["ytr"], x["xte"], x["yte"], k=20), baseline=_knn_faiss_baseline,
        work=lambda s: s[0] * s[1] * s[2], work_label="Ntrain·Ntest·D",
        describe=lambda x: EmbeddingIndex(x["xtr"]).search_path(x["xte"].shape[0], 20)))
    out.append(Bench(
        op="analogy_faiss", baseline_name=_faiss_name("IndexFlatIP, one query per question"),
        size_names=("V", "D", "Q", "W"), sizes={"cpu": [(100_000, 300, 19_544, 0), (100_000, 300, 19_544, 45_000)]},
        setup=_analogy_faiss_setup,
        ours=lambda x: x["index"].analogy(x["ids"][:, 0], x["ids"][:, 1], x["ids"][:, 2], "3cosadd"),
        baseline=_analogy_faiss_baseline, work=lambda s: s[0] * s[1] * s[2], work_label="V·D·Q",
        describe=lambda x: x["path"]))
    return out


def full_google_set(size: int = 100_000, dim: int = 300, seed: int = 0, method: str = "3cosadd") -> dict:
    """The bar measurement: the whole Google set over size x dim vectors, ours (median of 3) and gensim's
    evaluate_word_analogies (once: minutes on a CPU), same process, same vectors; identical counts checked."""
    import time

    from gensim.models import KeyedVectors

    arr, keys = analogy_vectors(size, dim, seed)
    index = EmbeddingIndex(torch.from_numpy(arr), keys)
    times, result = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        result = words.evaluate_word_analogies(index, method=method)
        times.append(time.perf_counter() - t0)
    kv = KeyedVectors(dim)
    kv.add_vectors(keys, arr)
    t0 = time.perf_counter()
    score, sections = kv.evaluate_word_analogies(str(words.bundled("questions-words.txt")))
    t_gensim = time.perf_counter() - t0
    same = all(a["correct"] == b["correct"] and a["incorrect"] == b["incorrect"]
               for a, b in zip(result.sections, sections))
    return {"size": size, "dim": dim, "ours_s": float(np.median(times)), "ours_runs_s": times,
            "gensim_s": t_gensim, "speedup": t_gensim / float(np.median(times)), "identical": same,
            "score": score, "rescored": result.rescored}
