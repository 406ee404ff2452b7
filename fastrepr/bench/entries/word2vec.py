"""Benchmark entries of word2vec:

* "word2vec_trainer": a whole training run (vocabulary built beforehand, weights reset before every
  run) on gensim's Wikipedia + Lee corpus (``fastrepr.data.corpora.wiki_lee_corpus``), ours against gensim's
  corpus_file mode with the same settings (window 5, dim 100, sample 1e-3, 5 epochs, min_count 5) and as many
  worker threads as torch uses (``torch.set_num_threads``). Words/s = corpus tokens x 5 / time. Size
  ``window=1`` runs our update="window" option instead of the default rule (exact on the CPU, batched on a
  GPU). Quality on a multi-million-token text: benchmarks/word2vec_quality.py.
* "sgns_step": one SGD step of skip-gram negative sampling on B (center, context) pairs with K
  negatives: our fused step (``negative_sampling_step_``) against plain PyTorch (two sparse nn.Embedding, bmm,
  logsigmoid, backward, torch.optim.SGD). Pairs/s = B / time.
* "sgns_loss": the same step through our autograd op (``sgns_loss(sparse=True)``, backward, SGD).
"""
from __future__ import annotations

import importlib.util

import torch

from fastrepr.data.corpora import wiki_lee_corpus
from fastrepr.functional import sgns_loss
from fastrepr.ops.negative_sampling import negative_sampling_step_
from fastrepr.text.word2vec import Word2Vec

from ..harness import Bench

WINDOW, DIM, SAMPLE, EPOCHS, MIN_COUNT = 5, 100, 1e-3, 5, 5


def _trainer_setup(size, device, dtype):
    from gensim.models import Word2Vec as GensimWord2Vec

    sg, hs, negative, copies, window_update = size
    path = str(wiki_lee_corpus(copies))
    threads = torch.get_num_threads()
    ours = Word2Vec(vector_size=DIM, window=WINDOW, min_count=MIN_COUNT, sg=sg, hs=hs, negative=negative,
                    sample=SAMPLE, epochs=EPOCHS, workers=threads, device=device, progress=False,
                    update="window" if window_update else None)
    ours.build_vocab(path)
    base = GensimWord2Vec(vector_size=DIM, window=WINDOW, min_count=MIN_COUNT, sg=sg, hs=hs, negative=negative,
                          sample=SAMPLE, epochs=EPOCHS, workers=threads)
    base.build_vocab(corpus_file=path)
    return {"syn0": ours.syn0, "ours": ours, "gensim": base, "path": path}


def _train_ours(x):
    x["ours"].reset_weights().train(x["path"], progress=False)
    return x["ours"]


def _train_gensim(x):
    g = x["gensim"]
    g.init_weights()
    g.train(corpus_file=x["path"], total_words=g.corpus_total_words, epochs=EPOCHS)
    return g


def _sgns_setup(size, device, dtype):
    V, D, K, B = size
    w_in = ((torch.rand(V, D, device=device) * 2 - 1) / D).to(dtype)
    w_out = (torch.randn(V, D, device=device) * 0.1).to(dtype)
    emb_in = torch.nn.Embedding(V, D, sparse=True, device=device, dtype=dtype)
    emb_out = torch.nn.Embedding(V, D, sparse=True, device=device, dtype=dtype)
    with torch.no_grad():
        emb_in.weight.copy_(w_in)
        emb_out.weight.copy_(w_out)
    return {"w_in": w_in, "w_out": w_out,
            "centers": torch.randint(0, V, (B,), device=device), "contexts": torch.randint(0, V, (B,), device=device),
            "negatives": torch.randint(0, V, (B, K), device=device),
            "emb_in": emb_in, "emb_out": emb_out,
            "opt": torch.optim.SGD([emb_in.weight, emb_out.weight], lr=0.025),
            "p_in": torch.nn.Parameter(w_in.clone()), "p_out": torch.nn.Parameter(w_out.clone())}


def _sgns_torch_step(x):
    """The plain-PyTorch step a user writes: gather, bmm, logsigmoid, backward, optimizer step."""
    opt = x["opt"]
    opt.zero_grad(set_to_none=True)
    h = x["emb_in"](x["centers"])                                           # [B, D]
    rows = torch.cat([x["contexts"].unsqueeze(1), x["negatives"]], 1)     # [B, 1 + K]
    s = torch.bmm(x["emb_out"](rows), h.unsqueeze(2)).squeeze(2)          # [B, 1 + K]
    sign = torch.ones_like(s)
    sign[:, 1:] = -1
    loss = -torch.nn.functional.logsigmoid(s * sign).sum(1).mean()
    loss.backward()
    opt.step()
    return loss


def _sgns_fused_step(x):
    return negative_sampling_step_(x["w_in"], x["w_out"], x["centers"].unsqueeze(1), x["contexts"], x["negatives"],
                                   None, 0.025 / x["centers"].shape[0])


def _sgns_autograd_step(x):
    if "opt_ours" not in x:
        x["opt_ours"] = torch.optim.SGD([x["p_in"], x["p_out"]], lr=0.025)
    opt = x["opt_ours"]
    opt.zero_grad(set_to_none=True)
    loss = sgns_loss(x["p_in"], x["p_out"], x["centers"], x["contexts"], x["negatives"], sparse=True)
    loss.backward()
    opt.step()
    return loss


def entries() -> list[Bench]:
    has_gensim = importlib.util.find_spec("gensim") is not None  # the baseline, and the corpus's source
    out = [Bench(
        op="word2vec_trainer",
        baseline_name="gensim Word2Vec (corpus_file)",
        size_names=("sg", "hs", "negative", "copies", "window"),
        sizes={"cpu": [(1, 0, 5, 1, 0), (0, 0, 5, 1, 0), (1, 1, 0, 1, 0), (0, 1, 0, 1, 0), (1, 0, 5, 1, 1),
                       (0, 0, 5, 1, 1)] if has_gensim else [],
               "cuda": [(1, 0, 5, 4, 0), (0, 0, 5, 4, 0)] if has_gensim else []},
        setup=_trainer_setup, ours=_train_ours, baseline=_train_gensim,
        work=lambda s: s[3], work_label="corpus copies",
    )]
    sgns_sizes = {"cpu": [(100_000, 100, 5, 4096), (100_000, 128, 5, 65536)],
                  "cuda": [(100_000, 128, 5, 65536), (1_000_000, 128, 5, 262144)]}
    for op, ours in (("sgns_step", _sgns_fused_step), ("sgns_loss", _sgns_autograd_step)):
        out.append(Bench(
            op=op, baseline_name="torch nn.Embedding(sparse)+bmm+logsigmoid+SGD",
            size_names=("V", "D", "K", "B"), sizes=sgns_sizes, setup=_sgns_setup, ours=ours,
            baseline=_sgns_torch_step, work=lambda s: s[3], work_label="pairs B",
        ))
    return out
