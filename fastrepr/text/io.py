"""Word-vector files: word2vec text and binary (the C tool's formats, also gensim's), and GloVe text.

Formats (``V`` vectors of dimension ``D``; words are UTF-8 by default and contain no whitespace):

    word2vec text:    "V D\\n" then V lines "word v1 v2 ... vD\\n"   (a trailing space before \\n is allowed)
    word2vec binary:  "V D\\n" then V records "word " + D little-endian float32 (+ optional "\\n")
    GloVe text:       no header; lines "word v1 ... vD"; D is taken from the first line

Readers stream (text line by line, binary in 1 MiB chunks), stop after ``limit`` vectors, and allocate one
float32 [V, D] array (GloVe: blocks of rows, joined at the end). Every malformed input raises ValueError
naming the file, the line or record, and what was expected: a header that is not two positive integers, fewer
or more vectors than the header declares, rows with the wrong number of values, values that are not floats,
words that do not decode. Duplicate words keep their first vector (as gensim does) with a warning.
``.gz`` and ``.bz2`` paths are (de)compressed transparently.
"""
from __future__ import annotations

import bz2
import gzip
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

_CHUNK = 1 << 20  # binary reader chunk (bytes)
_MAX_WORD = 1 << 16  # longest word (bytes) the binary reader accepts before calling the file damaged


def _open(path, mode: str) -> BinaryIO:
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.open(name, mode)
    if name.endswith(".bz2"):
        return bz2.open(name, mode)
    return open(name, mode)


def _decode(raw: bytes, encoding: str, errors: str, where: str) -> str:
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: {raw[:40]!r} is not valid {encoding} ({exc.reason}); pass "
                         f"unicode_errors='replace' or 'ignore' to load it anyway") from None


def _floats(tokens: list[str], dim: int, where: str) -> np.ndarray:
    if len(tokens) != dim:
        raise ValueError(f"{where}: expected a word and {dim} values, got {len(tokens)} values")
    try:
        return np.array(tokens, dtype=np.float32)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise ValueError(f"{where}: {bad!r} is not a floating-point number") from None


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


class _Collector:
    """Rows in file order, first occurrence of each word kept; the array is preallocated when V is known."""

    def __init__(self, path, dim: int, capacity: int | None):
        self.path, self.dim = path, dim
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.duplicates = 0
        self.blocks: list[np.ndarray] = []
        self.array = np.empty((capacity, dim), dtype=np.float32) if capacity is not None else None

    def add(self, word: str, vector: np.ndarray, where: str) -> None:
        if not word:
            raise ValueError(f"{where}: empty word")
        if word in self.index:
            self.duplicates += 1
            return
        row = len(self.keys)
        self.index[word] = row
        self.keys.append(word)
        if self.array is not None:
            self.array[row] = vector
        else:
            if row % 65536 == 0:
                self.blocks.append(np.empty((65536, self.dim), dtype=np.float32))
            self.blocks[-1][row % 65536] = vector

    def result(self) -> tuple[np.ndarray, list[str]]:
        if self.duplicates:
            warnings.warn(f"{self.path}: {self.duplicates} duplicate word(s); kept the first vector of each",
                          stacklevel=3)
        n = len(self.keys)
        if self.array is not None:
            vectors = self.array[:n] if n < len(self.array) else self.array
        elif self.blocks:
            vectors = np.concatenate(self.blocks)[:n]
        else:
            vectors = np.empty((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(vectors), self.keys


def _parse_header(line: bytes, path) -> tuple[int, int]:
    parts = line.split()
    try:
        count, dim = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{path}: line 1: expected the header '<count> <dimension>', got {line[:80]!r}") from None
    if count < 0 or dim <= 0:
        raise ValueError(f"{path}: line 1: header declares {count} vectors of dimension {dim}; expected "
                         "count >= 0 and dimension >= 1")
    return count, dim


def _text_fields(line: bytes, encoding: str, errors: str, where: str) -> list[str]:
    """Split one text row into [word, v1, ..., vD]; the C tool leaves a space before the newline."""
    return _decode(line, encoding, errors, where).rstrip().split(" ")


def _looks_like_text(line: bytes, dim: int, encoding: str) -> bool:
    try:
        fields = line.decode(encoding).rstrip().split(" ")
    except UnicodeDecodeError:
        return False
    return len(fields) == dim + 1 and all(_is_float(t) for t in fields[1:])


def load_word2vec_format(path, binary: bool | None = None, limit: int | None = None, *, encoding: str = "utf8",
                         unicode_errors: str = "strict") -> tuple[np.ndarray, list[str]]:
    """Read a word2vec file (text or binary; ``binary=None`` detects which from the first record).

    Returns ``(vectors, keys)``: a C-contiguous float32 array [V, D] and the V words in file order.
    ``limit`` reads only the first ``limit`` vectors (the rest of the file is not read). Memory: the [V, D]
    array plus one line or one 1 MiB chunk.

    Raises ValueError for a malformed file (see the module docstring), naming the line or record.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    with _open(path, "rb") as f:
        count, dim = _parse_header(f.readline(), path)
        wanted = count if limit is None else min(count, limit)
        rows = _Collector(path, dim, wanted)
        if wanted == 0:
            return rows.result()
        first = f.readline(_MAX_WORD + 32 * dim)  # a whole text row, or the start of the binary records
        if binary is None:
            binary = not _looks_like_text(first, dim, encoding)
        read = _read_binary if binary else _read_text
        n, unread = read(f, first, rows, wanted, dim, encoding, unicode_errors, path)
        if n < wanted:
            raise ValueError(f"{path}: the header declares {count} vectors but the file ends after {n}")
        if limit is None or limit >= count:
            rest = unread + f.read(_CHUNK)
            if rest.strip():
                raise ValueError(f"{path}: the header declares {count} vectors but the file has more data after "
                                 f"vector {count}: {rest[:40]!r}")
    return rows.result()


def _read_text(f: BinaryIO, first: bytes, rows: _Collector, wanted: int, dim: int, encoding: str, errors: str,
               path) -> tuple[int, bytes]:
    line, n = first, 0
    while n < wanted:
        if not line:
            return n, b""
        where = f"{path}: line {n + 2}"
        fields = _text_fields(line, encoding, errors, where)
        if fields == [""]:
            raise ValueError(f"{where}: empty line where vector {n + 1} of {wanted} was expected")
        rows.add(fields[0], _floats(fields[1:], dim, where), where)
        n += 1
        if n < wanted:
            line = f.readline()
    return n, b""


def _read_binary(f: BinaryIO, first: bytes, rows: _Collector, wanted: int, dim: int, encoding: str, errors: str,
                 path) -> tuple[int, bytes]:
    """Records "word " + D float32; returns (records read, bytes read past the last one)."""
    width = 4 * dim
    buf, pos, n = first, 0, 0
    eof = False
    while n < wanted:
        space = buf.find(b" ", pos)
        while space < 0 or len(buf) - space - 1 < width:
            if eof:
                if buf[pos:].strip():
                    raise ValueError(f"{path}: record {n + 1}: truncated (the file ends inside it)")
                return n, b""
            if space < 0 and len(buf) - pos > _MAX_WORD:
                raise ValueError(f"{path}: record {n + 1}: no space after the word within {_MAX_WORD} bytes; "
                                 "is this a word2vec binary file?")
            chunk = f.read(_CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            space = buf.find(b" ")
        where = f"{path}: record {n + 1}"
        word = _decode(buf[pos:space].lstrip(b"\n"), encoding, errors, where)  # the C tool ends records with \n
        vector = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
        rows.add(word, vector, where)
        pos = space + 1 + width
        n += 1
    return n, buf[pos:]


def load_glove(path, limit: int | None = None, *, encoding: str = "utf8",
               unicode_errors: str = "strict") -> tuple[np.ndarray, list[str]]:
    """Read a GloVe text file (no header; D from the first line). Returns ``(vectors [V, D] float32, keys)``.

    ``limit`` keeps the first ``limit`` vectors. Memory: the array (built in blocks of 65536 rows, copied
    once at the end) plus one line. Raises ValueError naming the line for rows of another length, values that
    are not floats, or words that do not decode.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    rows = None
    with _open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if limit is not None and rows is not None and len(rows.keys) >= limit:
                break
            where = f"{path}: line {line_no}"
            fields = _text_fields(line, encoding, unicode_errors, where)
            if fields == [""]:
                continue
            if rows is None:
                if len(fields) < 2:
                    raise ValueError(f"{where}: expected a word followed by its values, got {line[:80]!r}")
                rows = _Collector(path, len(fields) - 1, None)
            rows.add(fields[0], _floats(fields[1:], rows.dim, where), where)
    if rows is None:
        raise ValueError(f"{path}: no vectors (the file is empty)")
    return rows.result()


def _as_matrix(vectors) -> np.ndarray:
    try:
        import torch

        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().to("cpu", torch.float32).numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(vectors)
    if arr.ndim != 2:
        raise ValueError(f"vectors must have shape [V, D], got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"vectors must be a floating-point array, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_keys(keys: Sequence[str], count: int) -> None:
    if len(keys) != count:
        raise ValueError(f"keys has {len(keys)} entries but vectors has {count} rows")
    seen = set()
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            raise ValueError(f"keys[{i}] must be a non-empty str, got {key!r}")
        if any(c.isspace() for c in key):
            raise ValueError(f"keys[{i}] = {key!r} contains whitespace, which the word2vec format cannot store")
        if key in seen:
            raise ValueError(f"keys[{i}] = {key!r} is a duplicate; words must be unique")
        seen.add(key)


def save_word2vec_format(path, vectors, keys: Sequence[str], binary: bool = False, *,
                         encoding: str = "utf8") -> Path:
    """Write ``vectors`` ([V, D] numpy or torch, any float dtype; stored as float32) with their ``keys`` in the
    word2vec text or binary format, readable by the C tool, gensim and ``load_word2vec_format``.

    Text values are written with 9 significant digits, which restores every float32 exactly. Streams row by
    row (memory: one float32 copy of ``vectors`` when they are not float32 already). Raises ValueError for a
    key count that differs from V, empty, duplicate or whitespace-containing keys.
    """
    arr = _as_matrix(vectors)
    keys = list(keys)
    _check_keys(keys, arr.shape[0])
    count, dim = arr.shape
    fmt = " ".join(["%.9g"] * dim)
    with _open(path, "wb") as f:
        f.write(f"{count} {dim}\n".encode(encoding))
        little = arr.astype("<f4", copy=False)
        for key, row in zip(keys, little):
            if binary:
                f.write(key.encode(encoding) + b" " + row.tobytes() + b"\n")
            else:
                f.write(f"{key} {fmt % tuple(row.tolist())}\n".encode(encoding))
    return Path(path)
