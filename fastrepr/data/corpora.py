"""Data that installed packages ship: gensim's test data (gensim/test/test_data), located without importing
gensim. (Moved from ``fastrepr.text.corpora``, which re-exports it.)

* ``bundled(name)`` / ``gensim_test_file(name)``: a file of that folder, e.g. ``lee_background.cor`` (Lee et
  al. 2005, 300 news documents, 60k words), ``questions-words.txt`` (Google analogies), ``wordsim353.tsv``.
* ``wiki_lee_corpus()``: the largest English text gensim ships, built once and cached: the articles of its
  shortened English Wikipedia dump (205 articles, tokenized as gensim's WikiCorpus does: lowercase words of
  2-15 letters) followed by lee_background.cor (gensim's simple_preprocess), one document per line, about
  0.51M tokens. Small for word vectors: analogy accuracy on it is a few percent for any trainer. ``copies``
  repeats it (for timing on a longer run; repetition adds no information).
No downloads: everything comes from the installed gensim package.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .._io import atomic_write

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def bundled(name: str) -> Path:
    """Path of a data file shipped in gensim's test data ("questions-words.txt", "wordsim353.tsv",
    "simlex999.txt", "lee_background.cor", ...), located without importing gensim; RuntimeError when gensim
    or the file is missing."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} ships with gensim's test data: pip install gensim, or pass the file's path")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.exists():
        raise RuntimeError(f"{path} not found in the installed gensim; pass the file's path")
    return path


gensim_test_file = bundled  # the name fastrepr.text.corpora gave it


def cache_dir() -> Path:
    root = os.environ.get("FASTREPR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastrepr")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def wiki_lee_corpus(copies: int = 1, directory: str | os.PathLike | None = None) -> Path:
    """Path of the Wikipedia + Lee corpus (see the module docstring), repeated ``copies`` times; built on
    first use into ``directory`` (default: ``$FASTREPR_CACHE`` or ~/.cache/fastrepr). Needs gensim."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    directory = Path(directory) if directory is not None else cache_dir()
    base = directory / "wiki_lee.txt"
    if not base.exists():
        from gensim.corpora.wikicorpus import WikiCorpus
        from gensim.utils import simple_preprocess

        wiki = WikiCorpus(str(gensim_test_file(WIKI_DUMP)), dictionary={}, processes=1, article_min_tokens=1)
        with atomic_write(base, "w", encoding="utf-8") as out:  # concurrent builders: the last rename wins
            for tokens in wiki.get_texts():
                out.write(" ".join(tokens) + "\n")
            with open(gensim_test_file("lee_background.cor"), encoding="utf-8") as lee:
                for line in lee:
                    out.write(" ".join(simple_preprocess(line)) + "\n")
    if copies == 1:
        return base
    path = directory / f"wiki_lee_x{copies}.txt"
    if not path.exists():
        text = base.read_text(encoding="utf-8")
        with atomic_write(path, "w", encoding="utf-8") as out:
            out.write(text * copies)
    return path
