"""``fastrepr demo``: the package's main job in a few minutes on a CPU, one section per capability.

Each section is a function that prints its part of the report; later capabilities add sections to SECTIONS.
A section with an ``out`` parameter is given the demo's output directory (``--out``) for the files it writes.
The benchmark table runs every registered entry that declares a demo size (``Bench.demo``).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import os
import time
from pathlib import Path

import numpy as np

import torch

from .. import bench
from .._io import atomic_write
from ..functional import pairwise_abs_diff_mean


def _rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def pairwise_differences(seed: int = 0, factors: int = 5, points: int = 200, pairs: int = 64) -> dict:
    """BetaVAE-style probe on synthetic codes: one latent per factor vs a random rotation of the same codes.

    For each factor k, draw `points` x `pairs` pairs of factor vectors that share factor k and average |z1 - z2|
    over the pairs. A code with one latent per factor shows a zero in latent k; a rotated code spreads the fixed
    factor over every latent, so no latent singles it out.
    """
    _rule("pairwise latent differences (BetaVAE core): identity vs rotated codes")
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(factors, factors, generator=g, dtype=torch.float64))
    codes = {"identity": torch.eye(factors, dtype=torch.float64), "rotated": rotation}
    result = {}
    for name, enc in codes.items():
        enc = enc.float()
        profile, hits = [], 0
        for k in range(factors):
            f1 = torch.rand(points, pairs, factors, generator=g)
            f2 = torch.rand(points, pairs, factors, generator=g)
            f2[..., k] = f1[..., k]
            z1, z2 = f1 @ enc, f2 @ enc
            d = pairwise_abs_diff_mean(z1, z2)  # [points, latents]
            # the index form over a pool of codes gives the same numbers without building [P, B, D]
            pool = torch.cat([z1.reshape(-1, factors), z2.reshape(-1, factors)])
            i = torch.arange(points * pairs).view(points, pairs)
            assert torch.allclose(pairwise_abs_diff_mean(pool, i=i, j=i + points * pairs), d)
            profile.append(d.mean(0))
            hits += int((d.argmin(1) == k).sum())
        result[name] = (torch.stack(profile), hits / (points * factors))
    print(f"mean |z1 - z2| over {points} points x {pairs} pairs; row = fixed factor, column = latent")
    for name, (prof, acc) in result.items():
        print(f"\n  {name} code (the smallest entry of each row is marked *)")
        print("    factor | " + " ".join(f"  z{d}  " for d in range(factors)))
        for k in range(factors):
            m = int(prof[k].argmin())
            cells = " ".join(f"{v:.3f}{'*' if d == m else ' '}" for d, v in enumerate(prof[k].tolist()))
            print(f"    {k:>6} | {cells}")
        print(f"    argmin latent == fixed factor for {100 * acc:.1f}% of points (chance {100 / factors:.0f}%)")
    return {name: acc for name, (_, acc) in result.items()}


def benchmark_table(budget_s: float = 0.3) -> list:
    _rule("benchmark (this machine, ours vs the plain-PyTorch baseline, same run)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for op, entry in bench.REGISTRY.items():  # the entries that declare a demo size for this device
        if device in entry.demo:
            rows += bench.run([op], ["x".join(map(str, entry.demo[device]))], device=device, budget_s=budget_s)
    print(bench.format_table(rows))
    print("(full sweep: `fastrepr bench`; results in benchmarks/results, plots in benchmarks/plots)")
    return rows


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Simple augmentations for 8x8 digits: random shift by up to one pixel, random erasing of a 3x3 patch,
    brightness scaling and Gaussian noise."""
    n = x.shape[0]
    img = x.view(n, 1, 8, 8)
    padded = torch.nn.functional.pad(img, (1, 1, 1, 1))
    dx, dy = torch.randint(0, 3, (2, n), generator=g)
    rows = (torch.arange(8)[None, :] + dy[:, None])[:, :, None].expand(n, 8, 8)
    cols = (torch.arange(8)[None, :] + dx[:, None])[:, None, :].expand(n, 8, 8)
    out = padded[torch.arange(n)[:, None, None], 0, rows, cols]
    px, py = torch.randint(0, 6, (2, n), generator=g)
    mask = ((torch.arange(8)[None, :, None] - py[:, None, None]).abs() <= 1) & (
        (torch.arange(8)[None, None, :] - px[:, None, None]).abs() <= 1)
    out = out.masked_fill(mask & (torch.rand(n, 1, 1, generator=g) < 0.5), 0.0)
    out = out * (0.8 + 0.4 * torch.rand(n, 1, 1, generator=g)) + 0.05 * torch.randn(out.shape, generator=g)
    return out.reshape(n, 64)


def _positive_top1(model, x: torch.Tensor, g: torch.Generator) -> float:
    """Fraction of images whose augmented view's nearest neighbour (cosine) among the other views of all
    images is the view of the same image."""
    with torch.no_grad():
        a = torch.nn.functional.normalize(model(_augment(x, g)), dim=1)
        b = torch.nn.functional.normalize(model(_augment(x, g)), dim=1)
        return (a @ b.t()).argmax(1).eq(torch.arange(len(x))).float().mean().item()


def simclr_digits(steps: int = 400, batch: int = 256, seed: int = 0, out: Path | None = None) -> dict:
    """A short SimCLR run on scikit-learn's bundled 8x8 digits with fastrepr.NTXentLoss; with ``out``, the
    trained encoder's held-out embeddings are written there and ``fastrepr eval-embeddings`` runs on them."""
    from sklearn.datasets import load_digits

    from ..losses import NTXentLoss

    _rule("SimCLR on scikit-learn digits with fastrepr.NTXentLoss")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    perm = torch.randperm(len(data), generator=g)
    train, held_out = data[perm[:1400]], data[perm[1400:]]
    held_out_labels = torch.as_tensor(load_digits().target)[perm[1400:]]
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 64))
    loss_fn = NTXentLoss(temperature=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def batch_loss(x):
        return loss_fn(model(_augment(x, g)), model(_augment(x, g)))

    def evaluate():
        with torch.no_grad():
            return batch_loss(held_out).item(), _positive_top1(model, held_out, g)

    before = evaluate()
    untrained = copy.deepcopy(model)
    t0 = time.perf_counter()
    for _ in range(steps):
        x = train[torch.randint(0, len(train), (batch,), generator=g)]
        loss = batch_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - t0
    after = evaluate()
    print(f"MLP encoder 64-256-128-64, batch {batch} (2N = {2 * batch} anchors), temperature 0.5, Adam 1e-3")
    print(f"{steps} steps in {elapsed:.1f} s; held-out images ({len(held_out)}):")
    print(f"  {'':<8} {'NT-Xent loss':>12} {'positive-pair top-1':>20}")
    for name, (loss, acc) in (("before", before), ("after", after)):
        print(f"  {name:<8} {loss:>12.3f} {100 * acc:>19.1f}%")
    print(f"  (top-1: the nearest of {len(held_out)} other views is the same image's; chance "
          f"{100 / len(held_out):.2f}%)")
    embedding_numbers(untrained, model, held_out, held_out_labels, g)
    if out is not None:
        eval_embeddings_report(export_embeddings(model, held_out, held_out_labels, g, Path(out)), Path(out))
    return {"loss_before": before[0], "loss_after": after[0], "top1_before": before[1], "top1_after": after[1]}


def word_benchmarks(size: int = 20000, dim: int = 100, gensim_questions: int = 1500) -> dict:
    """Word vectors through a word2vec file into EmbeddingIndex, then the Google analogy set (3CosAdd and
    3CosMul) and WordSim353 / SimLex-999, with gensim's exact semantics; gensim itself on the first
    questions of the set, same vectors, for the counts and the time."""
    import tempfile
    from pathlib import Path

    from ..evaluation import words
    from ..evaluation.synthetic import analogy_vectors
    from ..search import EmbeddingIndex
    from ..text import load_word2vec_format, save_word2vec_format
    from .eval_words import analogy_table, pairs_table

    require_gensim()

    _rule("word benchmarks: Google analogies, WordSim353, SimLex-999 (gensim's semantics, batched)")
    pair_files = [words.bundled("wordsim353.tsv"), words.bundled("simlex999.txt")]
    vectors, keys = analogy_vectors(size, dim, pair_paths=pair_files)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.bin"
        save_word2vec_format(path, vectors, keys, binary=True)
        vectors, keys = load_word2vec_format(path)
        index = EmbeddingIndex(torch.from_numpy(vectors), keys)
        print(f"{size} synthetic words x {dim} (the set's relations planted among random distractors), "
              f"written and read back as word2vec binary; {index!r}")
        out = {}
        for method in ("3cosadd", "3cosmul"):
            t0 = time.perf_counter()
            out[method] = words.evaluate_word_analogies(index, method=method)
            print(f"\n{method}: {out[method].score:.1%} of {out[method].questions} questions in "
                  f"{time.perf_counter() - t0:.2f} s")
        print(analogy_table(out["3cosadd"]))
        print(pairs_table({str(p): words.evaluate_word_pairs(index, p) for p in pair_files}))
        from gensim.models import KeyedVectors

        subset = Path(tmp) / "questions.txt"
        lines = words.bundled("questions-words.txt").read_text().splitlines(keepends=True)
        with atomic_write(subset, "w") as f:
            f.write("".join(lines[:gensim_questions + 1]))
        kv = KeyedVectors(dim)
        kv.add_vectors(keys, vectors)
        t0 = time.perf_counter()
        theirs = kv.evaluate_word_analogies(str(subset))[1][-1]
        t_gensim = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = words.evaluate_word_analogies(index, subset).sections[-1]
        t_ours = time.perf_counter() - t0
        same = ours["correct"] == theirs["correct"] and ours["incorrect"] == theirs["incorrect"]
        print(f"gensim evaluate_word_analogies, first {gensim_questions} questions: {len(theirs['correct'])} "
              f"correct in {t_gensim:.2f} s; fastrepr: {len(ours['correct'])} in {t_ours:.2f} s "
              f"({t_gensim / t_ours:.1f}x); identical answers: {same}")
        out["identical"] = same
    return out


def word2vec_demo(corpus: str = "wiki_lee", workers: int | None = None, probe=("war", "city", "music")) -> dict:
    """Skip-gram with negative sampling (window 5, dim 100, 5 epochs) on a corpus shipped with gensim: ours vs
    gensim's words/s, WordSim353 Spearman, Google-analogy accuracy, and nearest neighbours of a few words.
    corpus: "wiki_lee" (0.51M tokens, gensim's Wikipedia + Lee text) or "lee" (lee_background.cor, 60k)."""
    from ..data.corpora import gensim_test_file, wiki_lee_corpus
    from ..evaluation.report import word_scores
    from ..text.word2vec import Word2Vec, default_workers

    print(f"\n== word2vec: skip-gram + negative sampling on gensim's own corpus, ours vs gensim "
          + "=" * 8)
    require_gensim()
    path = str(wiki_lee_corpus() if corpus == "wiki_lee" else gensim_test_file("lee_background.cor"))
    workers = workers or default_workers()
    settings = dict(vector_size=100, window=5, min_count=5, sg=1, negative=5, sample=1e-3, epochs=5, workers=workers)
    ours = Word2Vec(progress=False, **settings)
    ours.build_vocab(path)
    ours.train(path)
    from gensim.models import Word2Vec as GensimWord2Vec

    base = GensimWord2Vec(**settings)
    base.build_vocab(corpus_file=path)
    t0 = time.perf_counter()
    base.train(corpus_file=path, total_words=base.corpus_total_words, epochs=5)
    base_rate = ours.vocab.kept_tokens * 5 / (time.perf_counter() - t0)
    index = ours.wv  # fastrepr.EmbeddingIndex
    (ws, an), (bws, ban) = word_scores(index), word_scores(base.wv)
    print(f"corpus {os.path.basename(path)}: {ours.vocab.total_tokens} tokens, {len(ours.keys)} words; "
          f"{workers} threads, native ISA {_isa()}")
    print(f"  {'':8} {'words/s':>10} {'WS353 Spearman':>15} {'analogy acc.':>13}")
    print(f"  {'fastrepr':8} {ours.words_per_second / 1e6:9.2f}M {ws:15.3f} {100 * an:12.1f}%")
    print(f"  {'gensim':8} {base_rate / 1e6:9.2f}M {bws:15.3f} {100 * ban:12.1f}%")
    print(f"  speed-up {ours.words_per_second / base_rate:.1f}x (a 0.5M-token corpus is small: quality numbers are low "
          "for both and vary by about 0.02 between seeds)")
    for word in probe:
        if word in ours:
            print(f"  nearest to {word!r}: " + ", ".join(str(w) for w, _ in index.most_similar(word, k=6)))
    return {"ours_wps": ours.words_per_second, "gensim_wps": base_rate, "ws": ws, "gensim_ws": bws}


def require_gensim() -> None:
    """The demo compares with gensim on gensim's data; fastrepr depends on gensim, so its absence is a broken
    install, reported rather than skipped (a skipped section would let a broken demo pass)."""
    if importlib.util.find_spec("gensim") is None:
        raise RuntimeError("the demo needs gensim (a dependency of fastrepr; its test data holds the corpora and "
                           "the word benchmarks): pip install gensim, or reinstall fastrepr")


def _isa() -> str:
    from .. import _native

    ok, _ = _native.available()
    return _native.get().word2vec_isa() if ok else "n/a"


# Reduced sample sizes for the demo (the study's are 10000 / 5000; `fastrepr disentangle` runs those).
DEMO_SIZES = {"beta_vae": dict(num_train=500, num_eval=250), "factor_vae": dict(num_train=500, num_eval=250,
              num_variance_estimate=2000), "mig": dict(num_train=2000), "dci": dict(num_train=1000, num_test=500),
              "sap": dict(num_train=2000, num_test=1000), "modularity_explicitness": dict(num_train=2000, num_test=1000),
              "unsupervised": dict(num_train=2000)}


def disentanglement(seed: int = 0, sizes: dict | None = None) -> dict:
    """The metrics of Locatello et al. 2019 on dSprites for three representations of its factors: the factors
    themselves, a random rotation of them (same information, entangled), and noise. Then DCI's gradient
    boosting against scikit-learn's on one factor: same importances, time of each."""
    import warnings

    import numpy as np

    from ..data import DSprites, FactorObservations
    from ..evaluation import boosting
    from ..evaluation import disentanglement as dis
    from ..evaluation import representations as reps

    sizes = sizes or DEMO_SIZES
    _rule("disentanglement metrics on dSprites: factors vs a rotation of them vs noise")
    data = FactorObservations(DSprites())
    representations = {"factors": reps.factors, "rotated": reps.rotated_factors(data.factors_num_values, seed),
                       "noise": reps.noise(5, seed)}
    scores, seconds = {}, {}
    for name, rep in representations.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores[name] = dis.evaluate(data, rep, seed=seed, config=sizes)
        seconds[name] = time.perf_counter() - t0
    print(f"reduced sample sizes for the demo (MIG {sizes['mig']['num_train']} points, DCI "
          f"{sizes['dci']['num_train']}/{sizes['dci']['num_test']}, BetaVAE {sizes['beta_vae']['num_train']} points; "
          "the study uses 10000/5000: `fastrepr disentangle`)")
    print(f"    {'metric':<24} {'score':<38} " + " ".join(f"{n:>9}" for n in representations))
    for metric, keys in dis.KEYS.items():
        for key in keys:
            print(f"    {metric:<24} {key:<38} " + " ".join(f"{scores[n][metric][key]:9.3f}" for n in representations))
    print(f"    {'seconds':<63} " + " ".join(f"{seconds[n]:9.1f}" for n in representations))
    print("  The rotation keeps all the information (explicitness: a linear probe on all codes does as well), but")
    print("  every code mixes every factor, so MIG, SAP, DCI disentanglement and modularity fall. Which of the two")
    print("  a model learns is not identifiable without supervision (Locatello et al. 2019, Theorem 1).")

    from sklearn.ensemble import GradientBoostingClassifier

    rs = np.random.RandomState(seed)
    factors = data.sample_factors(1000, rs)
    codes = np.asarray(representations["rotated"](factors.astype(np.float32)))
    t0 = time.perf_counter()
    ours = boosting.fit_predict(codes, factors[:, 0], random_state=seed)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = GradientBoostingClassifier(random_state=seed).fit(codes, factors[:, 0])
    t_sk = time.perf_counter() - t0
    diff = float(np.abs(ours.importances[0] - sk.feature_importances_).max())
    print(f"  DCI's boosted trees, factor 'shape' (3 classes, 1000 points, 300 trees): fastrepr {t_ours:.2f} s, "
          f"scikit-learn {t_sk:.2f} s; importances differ by at most {diff:.1e}")
    return {"scores": scores, "importance_diff": diff}


def word2vec_section() -> dict:
    return word2vec_demo()


def vae_section(seconds: float = 10.0, large_beta: float = 8.0, seed: int = 0, out: Path | None = None) -> dict:
    """Two tiny β-VAEs (MLP, width 256) on procedural dSprites, β = 1 and a large β, each for ``seconds`` of
    training, scored on MIG, SAP and DCI at reduced sizes; with ``out``, the large-β model's traversal PNG."""
    import warnings

    from ..data import DSprites
    from ..evaluation import disentanglement as dis
    from ..vae_training import train_vae, write_pngs

    _rule(f"beta-VAEs trained on dSprites for {seconds:g} s each: beta = 1 vs beta = {large_beta:g}")
    sizes = {"mig": dict(num_train=2000), "sap": dict(num_train=2000, num_test=1000),
             "dci": dict(num_train=1000, num_test=500)}
    result = {}
    for beta in (1.0, large_beta):
        r = train_vae("beta", beta, 10**6, seed, arch="mlp", hidden=(256, 256), lr=1e-3, time_limit=seconds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = dis.evaluate(DSprites(), r.model.representation, list(sizes), seed=seed, config=sizes,
                                  deterministic=True)
        result[beta] = dict(steps=r.steps, loss=r.losses[-1], mig=scores["mig"]["discrete_mig"],
                            sap=scores["sap"]["SAP_score"], dci=scores["dci"]["disentanglement"], model=r.model)
        print(f"  beta {beta:4g}: {r.steps} steps, loss {r.losses[-1]:7.1f}, MIG {result[beta]['mig']:.3f}, "
              f"SAP {result[beta]['sap']:.3f}, DCI disentanglement {result[beta]['dci']:.3f}")
    if out is not None:
        (Path(out) / "vae").mkdir(exist_ok=True)
        paths = write_pngs(result[large_beta]["model"], Path(out) / "vae", seed=seed)
        print(f"  latent traversals of the beta = {large_beta:g} model: {paths['traversal']}")
    print("  (seconds of training, not the study's 300 000 steps: `fastrepr train-vae` and benchmarks/vae_study.py "
          "run longer)")
    return result


SECTIONS = [pairwise_differences, simclr_digits, word_benchmarks, disentanglement, word2vec_section,
            benchmark_table, vae_section]


def run(out: Path | None = None) -> None:
    t0 = time.perf_counter()
    print("fastrepr demo: fused kernels for learning and evaluating representations")
    for section in SECTIONS:
        section(out=out) if "out" in inspect.signature(section).parameters else section()
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")


HELP = "a short tour of the package on built-in data, with a benchmark table"


def add_arguments(p) -> None:
    p.add_argument("--out", default="fastrepr-demo",
                   help="directory for the files the demo writes: embeddings .npy for `fastrepr eval-embeddings`, "
                        "PNGs (created; default ./fastrepr-demo)")


def main(args) -> int:
    from .._io import check_writable

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out, "--out", directory=True)
    run(out)
    return 0


# ------------------------------------------------------------------------------------------------------
# issue 14: the SimCLR encoder's embeddings before and after training, by the eval-embeddings numbers

def embedding_numbers(before, after, x: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> dict:
    """Print and return {metric: (before, after)} for two encoders on held-out images x with labels: kNN
    accuracy (half of x as the memory bank), silhouette, k-means NMI (when faiss is installed), two-view
    recall@1, and uniformity / alignment / effective rank when fastrepr.evaluation.geometry has them.
    Costs well under a second on the ~400 held-out digits (everything is N x N at N ~ 400)."""
    from .._faiss import available as faiss_available
    from ..evaluation import clustering, geometry, probes, retrieval

    half = len(x) // 2
    rows: dict = {}
    for name, model in (("before", before), ("after", after)):
        with torch.no_grad():
            z, v1, v2 = model(x), model(_augment(x, g)), model(_augment(x, g))
        got = {"kNN top-1 (k=20, cosine)": probes.knn_accuracy(z[:half], labels[:half], z[half:], labels[half:]),
               "silhouette (cosine)": clustering.silhouette(z, labels, "cosine"),
               "two-view recall@1": retrieval.recall_at_k(v1, v2, torch.arange(len(x)), ks=(1,))[1]}
        if faiss_available():
            got["k-means NMI"] = clustering.kmeans_nmi(z, labels)
        got["uniformity (t=2)"] = float(geometry.uniformity(z))
        got["alignment (two views)"] = float(geometry.alignment(v1, v2))
        got["effective rank"] = geometry.effective_rank(z)
        for metric, value in got.items():
            rows.setdefault(metric, [None, None])[0 if name == "before" else 1] = float(value)
    print(f"  embeddings of the {len(x)} held-out images (fastrepr eval-embeddings numbers):")
    print(f"  {'':<26} {'before':>8} {'after':>8}")
    for metric, (b, a) in rows.items():
        print(f"  {metric:<26} {b:>8.3f} {a:>8.3f}")
    return {k: tuple(v) for k, v in rows.items()}


def export_embeddings(model, x: torch.Tensor, labels: torch.Tensor, g: torch.Generator, out: Path) -> dict:
    """Write two augmented views of the held-out images through the encoder as eval-embeddings input, atomically:
    embeddings.npy [2n, 64] float32 (view 1 rows, then view 2), labels.npy [2n] int64 (the digit),
    pairs.npy [n, 2] int64 (row i of view 1 with row n + i of view 2). Returns {name: path}."""
    with torch.no_grad():
        v1, v2 = model(_augment(x, g)), model(_augment(x, g))
    n = len(x)
    arrays = {"embeddings": torch.cat([v1, v2]).numpy().astype(np.float32),
              "labels": torch.cat([labels, labels]).numpy().astype(np.int64),
              "pairs": np.stack([np.arange(n), np.arange(n) + n], 1).astype(np.int64)}
    paths = {}
    for name, arr in arrays.items():
        paths[name] = out / f"{name}.npy"
        with atomic_write(paths[name], "wb") as f:
            np.save(f, arr, allow_pickle=False)
    return paths


def eval_embeddings_report(paths: dict, out: Path) -> None:
    """Run the ``fastrepr eval-embeddings`` command on the files export_embeddings wrote (its plots go to
    out/eval-embeddings), as a user would after the demo."""
    from . import eval_embeddings

    plots = out / "eval-embeddings"
    print(f"  wrote {paths['embeddings']}, {paths['labels'].name}, {paths['pairs'].name}; the report of")
    print(f"  fastrepr eval-embeddings {paths['embeddings']} --labels {paths['labels']} --pairs {paths['pairs']} "
          f"--out {plots}:")
    eval_embeddings.main(argparse.Namespace(embeddings=str(paths["embeddings"]), labels=str(paths["labels"]),
                                            pairs=str(paths["pairs"]), out=str(plots), k=10, seed=0,
                                            no_progress=True))
