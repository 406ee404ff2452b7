"""``fastrepr eval-embeddings EMB.npy [--labels L.npy] [--pairs P.npy] [--out DIR]``: every applicable number
of one embedding matrix in one table, and the plots (singular-value spectrum, 2-D projection coloured by label,
per-class silhouette bars)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..bench.harness import table
from .args import input_file, positive_int

HELP = "clusterability, retrieval and geometry numbers of an embedding matrix (.npy), with plots"


def load_array(path: str, flag: str, kinds: str) -> np.ndarray:
    """A plain numeric .npy array (never unpickled: allow_pickle=False), of a dtype kind in ``kinds``."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays, damaged headers, truncated data
        raise ValueError(f"{flag} {path}: not a plain numeric .npy file ({str(exc).splitlines()[0]})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{flag} {path}: expected one .npy array, got an .npz archive")
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{flag} {path}: dtype {arr.dtype} is not accepted here")
    return arr


def _geometry_rows(z: torch.Tensor, pairs: np.ndarray | None) -> list:
    """The numbers of fastrepr.evaluation.geometry that exist on this install (guarded: it may be absent)."""
    try:
        from ..evaluation import geometry
    except ImportError:
        return []
    wanted = [("uniformity (t=2)", "uniformity", (z,)), ("effective rank", "effective_rank", (z,)),
              ("RankMe", "rankme", (z,)), ("Hoyer sparsity", "hoyer_sparsity", (z,)),
              ("active units (var > 0.01)", "active_units", (z, 0.01))]
    if pairs is not None:
        wanted.append(("alignment (alpha=2, pairs)", "alignment", (z[pairs[:, 0]], z[pairs[:, 1]])))
    rows = []
    for label, name, call_args in wanted:
        if hasattr(geometry, name):  # present once the geometry issue's module is merged
            rows.append((label, float(getattr(geometry, name)(*call_args))))
    return rows


def evaluate(z: torch.Tensor, labels: np.ndarray | None, pairs: np.ndarray | None, k: int, seed: int,
             progress: bool = True) -> list:
    """[(metric, value)] for every number that applies to these inputs."""
    from .._progress import Progress
    from ..evaluation import clustering, retrieval

    steps = 1 + (3 if labels is not None else 0) + (1 if pairs is not None else 0)
    rows = [("rows", z.shape[0]), ("dimension", z.shape[1])]
    with Progress(steps, enabled=progress, desc="eval-embeddings") as bar:
        rows += _geometry_rows(z, pairs)
        bar.update()
        if labels is not None:
            rows.append(("classes", len(np.unique(labels))))
            rows.append(("silhouette (euclidean)", clustering.silhouette(z, labels)))
            bar.update()
            rows.append(("silhouette (cosine)", clustering.silhouette(z, labels, "cosine")))
            bar.update()
            try:
                rows.append(("k-means NMI", clustering.kmeans_nmi(z, labels, seed=seed)))
                rows.append(("k-means ARI", clustering.kmeans_ari(z, labels, seed=seed)))
            except RuntimeError as exc:  # faiss missing: say so in the table rather than fail the report
                rows.append(("k-means NMI/ARI", f"skipped ({str(exc).split(';')[0]})"))
            bar.update()
        if pairs is not None:
            ks = tuple(sorted({1, 5, min(10, z.shape[0]), k}))
            got = retrieval.retrieval_scores(z[pairs[:, 0]], z, torch.from_numpy(pairs[:, 1]), ks,
                                             exclude=torch.from_numpy(pairs[:, 0]))
            rows += [(f"recall@{kk} (pairs, cosine)", v) for kk, v in got.recall.items()]
            rows.append(("mAP (pairs, cosine)", got.mean_average_precision))
            bar.update()
    return rows


def write_plots(z: torch.Tensor, labels: np.ndarray | None, out: Path) -> list[Path]:
    """spectrum.png, and with labels projection.png and silhouette.png, written atomically into out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_write
    from ..evaluation import clustering, probes

    paths = []
    x = z.double()
    sv = torch.linalg.svdvals(x - x.mean(0)).numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.arange(1, sv.size + 1), np.maximum(sv, 1e-300))
    ax.set_xlabel("index")
    ax.set_ylabel("singular value (centered)")
    ax.set_title("singular-value spectrum")
    with atomic_write(out / "spectrum.png", "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    paths.append(out / "spectrum.png")
    if labels is not None:
        paths.append(probes.projection_plot(z, torch.from_numpy(np.unique(labels, return_inverse=True)[1].reshape(-1)),
                                            out / "projection.png", title="2-D PCA projection"))
        per = clustering.per_class_silhouette(z, labels)
        fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(per)), 4))
        ax.bar([str(c) for c in per], list(per.values()))
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("class")
        ax.set_ylabel("mean silhouette")
        with atomic_write(out / "silhouette.png", "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
        paths.append(out / "silhouette.png")
    return paths


def add_arguments(p) -> None:
    p.add_argument("embeddings", type=input_file, help="[N, D] float .npy")
    p.add_argument("--labels", type=input_file, help="[N] integer class labels .npy")
    p.add_argument("--pairs", type=input_file, help="[M, 2] integer .npy of positive row pairs (query, key)")
    p.add_argument("--out", help="directory for the PNG plots (created)")
    p.add_argument("--k", type=positive_int, default=10, help="also report recall@K for this K (default 10)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    from .._io import check_writable

    emb = load_array(args.embeddings, "embeddings", "fiu")
    if emb.ndim != 2 or emb.shape[0] < 2 or emb.shape[1] < 1:
        raise ValueError(f"embeddings {args.embeddings}: expected an [N, D] array with N >= 2, got {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError(f"embeddings {args.embeddings}: holds NaN or Inf")
    z = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float64 if emb.dtype == np.float64 else np.float32))
    labels = pairs = None
    if args.labels:
        labels = load_array(args.labels, "--labels", "iub")
        if labels.shape != (z.shape[0],):
            raise ValueError(f"--labels {args.labels}: expected shape ({z.shape[0]},), got {labels.shape}")
    if args.pairs:
        pairs = load_array(args.pairs, "--pairs", "iu").astype(np.int64)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] < 1:
            raise ValueError(f"--pairs {args.pairs}: expected an [M, 2] array, got {pairs.shape}")
        if pairs.min() < 0 or pairs.max() >= z.shape[0]:
            raise ValueError(f"--pairs {args.pairs}: row indices must lie in [0, {z.shape[0]})")
    out = None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        check_writable(out, "--out", directory=True)
    rows = evaluate(z, labels, pairs, args.k, args.seed, progress=not args.no_progress)
    print(table(("metric", "value"), [(n, f"{v:.6g}" if isinstance(v, float) else str(v)) for n, v in rows]))
    if out is not None:
        for path in write_plots(z, labels, out):
            print(f"wrote {path}")
    sys.stdout.flush()
    return 0
