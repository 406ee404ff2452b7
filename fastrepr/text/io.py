"""Word-vector files: word2vec text and binary (the C tool's formats, also gensim's), and GloVe text.

Formats (``V`` vectors of dimension ``D``; words are UTF-8 by default and contain no whitespace):

    word2vec text:    "V D\\n" then V lines "word v1 v2 ... vD\\n"   (a trailing space before \\n is allowed)
    word2vec binary:  "V D\\n" then V records "word " + D little-endian float32 (+ optional "\\n")
    GloVe text:       no header; lines "word v1 ... vD"; D is taken from the first line

Readers stream (text line by line, binary in 1 MiB chunks), stop after ``limit`` vectors, and raise
``fastrepr.FormatError`` (a ValueError) naming the file, the line or record, and what was expected: a header
that is not two integers, fewer or more vectors than the header declares, rows with the wrong number of
values, values that are not floats, words that do not decode, lines longer than a word and D numbers can
be, a damaged or truncated ``.gz``/``.bz2`` stream. Values are what the file says (``nan``/``inf``
included). Duplicate words keep their first vector (as gensim does) with a warning. ``.gz`` and ``.bz2``
paths are (de)compressed transparently.

Text or binary (``binary=None``) is decided on the first two records, never silently (``_detect``): text
when line 2 holds a word and exactly D numbers and line 3 is a text row too; an error (line 2, with the
count found) when both lines are rows of text of another length (a header that mis-states D); otherwise
binary. The header's V is then checked against the file's size for that format (at least 2D+1 bytes per
text row, 4D+2 per binary record) before the [V, D] array is allocated.
A compressed file's size is not known up front, so its array grows with the rows actually read (at most
twice what was read).
"""
from __future__ import annotations

import codecs
import operator
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from .._io import FormatError, atomic_write, data_size, open_read, stream_errors

_CHUNK = 1 << 20  # binary reader chunk (bytes)
_MAX_WORD = 1 << 16  # longest word (bytes) accepted before calling the file damaged
_MAX_VALUE = 64  # longest text number (bytes, with its separator): "%.17g" of a double is at most 24
_MAX_DIM = 1 << 24  # a sane bound on a header's dimension (the largest published embeddings have ~10^4)
_MAX_GLOVE_LINE = 1 << 26  # GloVe has no header: its first line may hold at most this many bytes


def _decode(raw: bytes, encoding: str, errors: str, path, **where) -> str:
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"{raw[:40]!r} is not valid {encoding} ({exc.reason}); pass "
                          "unicode_errors='replace' or 'ignore' to load it anyway", **where) from None


def _floats(tokens: list[str], dim: int, path, line: int) -> np.ndarray:
    if len(tokens) != dim:
        raise FormatError(path, f"expected a word and {dim} values, got {len(tokens)} values", line=line)
    try:
        return np.array(tokens, dtype=np.float32)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise FormatError(path, f"{bad!r} is not a floating-point number", line=line) from None


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


class _Collector:
    """Rows in file order, first occurrence of each word kept. ``capacity``: the rows to preallocate (known
    and checked against the file's size); None grows by doubling blocks, so memory follows what was read."""

    def __init__(self, path, dim: int, capacity: int | None):
        self.path, self.dim = path, dim
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.duplicates = 0
        self.blocks: list[np.ndarray] = []
        self.filled = 0  # rows of the last block in use
        if capacity is not None:
            self.blocks.append(np.empty((capacity, dim), dtype=np.float32))

    def add(self, word: str, vector: np.ndarray, **where) -> None:
        if not word:
            raise FormatError(self.path, "empty word", **where)
        if word in self.index:
            self.duplicates += 1
            return
        self.index[word] = len(self.keys)
        self.keys.append(word)
        if not self.blocks or self.filled == len(self.blocks[-1]):  # doubling: at most 2x the rows read
            self.blocks.append(np.empty((max(1, len(self.keys) - 1), self.dim), dtype=np.float32))
            self.filled = 0
        self.blocks[-1][self.filled] = vector
        self.filled += 1

    def result(self) -> tuple[np.ndarray, list[str]]:
        if self.duplicates:
            warnings.warn(f"{self.path}: {self.duplicates} duplicate word(s); kept the first vector of each",
                          stacklevel=3)
        if not self.blocks:
            return np.empty((0, self.dim), dtype=np.float32), self.keys
        parts = self.blocks[:-1] + [self.blocks[-1][:self.filled]]
        vectors = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.ascontiguousarray(vectors), self.keys


def _check_args(limit, encoding: str, unicode_errors: str) -> int | None:
    if limit is not None:
        if isinstance(limit, bool):
            raise TypeError(f"limit must be a non-negative int or None, got {limit!r}")
        try:
            limit = operator.index(limit)
        except TypeError:
            raise TypeError(f"limit must be a non-negative int or None, got {limit!r}") from None
        if limit < 0:
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding {encoding!r} is not a known codec") from None
    try:
        codecs.lookup_error(unicode_errors)
    except (LookupError, TypeError):
        raise ValueError(f"unicode_errors must be an error handler such as 'strict', 'replace' or 'ignore', "
                         f"got {unicode_errors!r}") from None
    return limit


def _parse_header(line: bytes, path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise FormatError(path, f"expected the header '<count> <dimension>', got {line[:80]!r}", line=1)
    count, dim = int(parts[0]), int(parts[1])
    if not 1 <= dim <= _MAX_DIM:
        raise FormatError(path, f"header declares {count} vectors of dimension {dim}; expected a dimension "
                          f"from 1 to {_MAX_DIM}", line=1)
    return count, dim


def _text_fields(line: bytes, encoding: str, errors: str, path, line_no: int) -> list[str]:
    """Split one text row into [word, v1, ..., vD]; the C tool leaves a space before the newline."""
    return _decode(line, encoding, errors, path, line=line_no).rstrip().split(" ")


def _numbers_after_word(line: bytes) -> list[bytes] | None:
    """The tokens after the first word of a text row, or None when they are not ASCII floats. Only the
    numbers are looked at: the word may be in any encoding."""
    space = line.find(b" ")
    if space <= 0:
        return None
    tokens = line[space + 1:].rstrip().split(b" ")
    try:
        text = [t.decode("ascii") for t in tokens]
    except UnicodeDecodeError:
        return None
    return tokens if tokens != [b""] and all(_is_float(t) for t in text) else None


def _text_row(line: bytes, dim: int | None = None) -> bool:
    """Whether ``line`` is a text row: a word without control bytes, a space, then ASCII numbers (exactly
    ``dim`` of them when given, else at least one)."""
    numbers = _numbers_after_word(line)
    if numbers is None or (dim is not None and len(numbers) != dim):
        return False
    return not any(b < 32 for b in line[:line.find(b" ")])


def _detect(f: BinaryIO, first: bytes, binary: bool | None, count: int, dim: int, path) -> tuple[bool, bytes]:
    """Text or binary, from the first two records (module docstring); returns (binary, bytes read so far).

    Text: line 2 is a word and exactly D numbers, and line 3 (if V > 1) a text row, blank or absent (the
    text reader then reports it). Binary otherwise, unless lines 2 and 3 are both rows of text (of another
    length): then the file is text that contradicts its header, an error. For binary data to pass for two
    text rows, the bytes of its first vector up to a newline byte, and the next word and the bytes up to
    the following newline, would all have to be ASCII digits, signs and spaces; when they happen to (a
    first float whose bytes are "1\\n\\n..."), the text reader then fails loudly. Measured: no random binary
    file read wrong (``benchmarks/fuzz_readers.py --detection 20000``: D = 1, 2, 4, 16). An explicit
    ``binary=True`` is trusted unless lines 2 and 3 are both text rows of exactly D numbers."""
    if binary is False:
        return False, first
    text = _text_row(first, dim)
    second = f.readline(_MAX_WORD + _MAX_VALUE * dim) if count > 1 else b""
    if binary is None and text and (count == 1 or not second.strip() or _text_row(second)):
        return False, first + second
    if binary is None:
        if _text_row(first) and (count == 1 or _text_row(second)):
            found = len(_numbers_after_word(first))
            raise FormatError(path, f"the header declares dimension {dim} but this row of text holds {found} "
                              "values; the file is text, not binary, and does not match its header (if it is "
                              "binary, pass binary=True)", line=2)
    elif text and count > 1 and _text_row(second, dim):
        raise FormatError(path, f"binary=True, but lines 2 and 3 are words with {dim} numbers in text: the file is "
                          "word2vec text (pass binary=False or None)", line=2)
    return True, first + second


def load_word2vec_format(path, binary: bool | None = None, limit: int | None = None, *, encoding: str = "utf8",
                         unicode_errors: str = "strict") -> tuple[np.ndarray, list[str]]:
    """Read a word2vec file (text or binary; ``binary=None`` detects which, see the module docstring).

    Returns ``(vectors, keys)``: a C-contiguous float32 array [V, D] and the V words in file order.
    ``limit`` reads only the first ``limit`` vectors (the rest of the file is not read; ``limit=0`` gives a
    [0, D] array). Memory: the [V, D] array plus one line or one 1 MiB chunk (compressed files: up to twice
    the array while it grows). Raises FormatError (a ValueError) for a malformed file, naming the file and
    the line or record; ValueError/TypeError for a bad argument; OSError when the file cannot be opened.
    """
    limit = _check_args(limit, encoding, unicode_errors)
    if binary not in (None, True, False):
        raise TypeError(f"binary must be True, False or None (detect), got {binary!r}")
    size = data_size(path)
    at: dict = {"line": 1}
    with open_read(path) as f, stream_errors(path, lambda: at):
        header = f.readline(256)
        count, dim = _parse_header(header, path)
        wanted = count if limit is None else min(count, limit)
        if wanted == 0:
            if count == 0:  # nothing may follow a header of 0 vectors
                _check_end(f, b"", path, count, line=2)
            return _Collector(path, dim, 0).result()
        available = None if size is None else size - len(header)
        at = {"line": 2}
        first = f.readline(_MAX_WORD + _MAX_VALUE * dim)
        if not first.strip():
            raise FormatError(path, f"the header declares {count} vectors but the file ends after 0"
                              if not first else "empty line where vector 1 was expected", line=2)
        binary, first = _detect(f, first, binary, count, dim, path)
        # memory so far: two lines (bounded by the file); now the header against the file's size
        fmt, per_row = ("binary", 4 * dim + 2) if binary else ("text", 2 * dim + 1)
        _check_size(path, count, dim, wanted, available, fmt, per_row)
        rows = _Collector(path, dim, None if available is None else wanted)
        read = _read_binary if binary else _read_text
        n, unread = read(f, first, rows, wanted, dim, encoding, unicode_errors, path, at)
        where = {"record": n + 1} if binary else {"line": n + 2}  # where the file ends, or goes on
        if n < wanted:
            raise FormatError(path, f"the header declares {count} vectors but the file ends after {n}", **where)
        if wanted == count:
            _check_end(f, unread, path, count, **where)
    return rows.result()


def _check_size(path, count: int, dim: int, wanted: int, available: int | None, fmt: str, per_row: int) -> None:
    """The header's count against the file's size (plain files): each row takes at least ``per_row`` bytes
    (text: a 1-byte word and D one-digit values with their separators; binary: word, space, 4·D bytes)."""
    if available is not None and wanted * per_row > available + 1:
        raise FormatError(path, f"the header declares {count} vectors of dimension {dim}; as word2vec {fmt} "
                          f"{wanted} of them need at least {wanted * per_row} bytes, the file holds {available} "
                          f"after the header (at most {(available + 1) // per_row} vectors)", line=1)


def _check_end(f: BinaryIO, unread: bytes, path, count: int, **where) -> None:
    rest = unread + f.read(_CHUNK)
    if rest.strip():
        raise FormatError(path, f"the header declares {count} vectors but the file has more data after "
                          f"vector {count}: {rest[:40]!r}", **where)


def _readline(f: BinaryIO, limit: int, path, line_no: int) -> bytes:
    line = f.readline(limit)
    if len(line) == limit and not line.endswith(b"\n") and f.read(1):
        raise FormatError(path, f"longer than {limit} bytes (a word and the row's values cannot be); is this a "
                          "vector file?", line=line_no)
    return line


def _read_text(f: BinaryIO, first: bytes, rows: _Collector, wanted: int, dim: int, encoding: str, errors: str,
               path, at: dict) -> tuple[int, bytes]:
    """Rows from ``first`` (the lines detection read) and then the file."""
    parts = first.split(b"\n")
    pending = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    pending.reverse()
    line, n, limit = pending.pop() if pending else b"", 0, _MAX_WORD + _MAX_VALUE * dim
    while n < wanted:
        if not line:
            return n, b""
        at["line"] = line_no = n + 2
        fields = _text_fields(line, encoding, errors, path, line_no)
        if fields == [""]:
            raise FormatError(path, f"empty line where vector {n + 1} of {wanted} was expected", line=line_no)
        rows.add(fields[0], _floats(fields[1:], dim, path, line_no), line=line_no)
        n += 1
        if n < wanted:
            line = pending.pop() if pending else _readline(f, limit, path, n + 2)
    return n, b"".join(reversed(pending))


def _read_binary(f: BinaryIO, first: bytes, rows: _Collector, wanted: int, dim: int, encoding: str, errors: str,
                 path, at: dict) -> tuple[int, bytes]:
    """Records "word " + D float32; returns (records read, bytes read past the last one)."""
    width = 4 * dim
    buf, pos, n = first, 0, 0
    eof = False
    at.clear()
    while n < wanted:
        at["record"] = n + 1
        space = buf.find(b" ", pos)
        while space < 0 or len(buf) - space - 1 < width:
            if eof:
                if buf[pos:].strip():
                    raise FormatError(path, "truncated (the file ends inside it)", record=n + 1)
                return n, b""
            if space < 0 and len(buf) - pos > _MAX_WORD:
                raise FormatError(path, f"no space after the word within {_MAX_WORD} bytes; is this a word2vec "
                                  "binary file?", record=n + 1)
            chunk = f.read(_CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            space = buf.find(b" ")
        word = _decode(buf[pos:space].lstrip(b"\n"), encoding, errors, path, record=n + 1)  # records end with \n
        rows.add(word, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1), record=n + 1)
        pos = space + 1 + width
        n += 1
    return n, buf[pos:]


def load_glove(path, limit: int | None = None, *, encoding: str = "utf8",
               unicode_errors: str = "strict") -> tuple[np.ndarray, list[str]]:
    """Read a GloVe text file (no header; D from the first line). Returns ``(vectors [V, D] float32, keys)``.

    ``limit`` keeps the first ``limit`` vectors (``limit=0``: a [0, D] array; the first line is read for D).
    Blank lines are skipped. Memory: the array (grown in doubling blocks, copied once at the end) plus one
    line. Raises FormatError naming the file and line for rows of another length, values that are not
    floats, words that do not decode, an empty file, or a line longer than a row can be.
    """
    limit = _check_args(limit, encoding, unicode_errors)
    rows = None
    at: dict = {"line": 1}
    with open_read(path) as f, stream_errors(path, lambda: at):
        line_no, max_line = 0, _MAX_GLOVE_LINE
        while True:
            line_no += 1
            at["line"] = line_no
            line = _readline(f, max_line, path, line_no)
            if not line:
                break
            fields = _text_fields(line, encoding, unicode_errors, path, line_no)
            if fields == [""]:
                continue
            if rows is None:
                if len(fields) < 2:
                    raise FormatError(path, f"expected a word followed by its values, got {line[:80]!r}",
                                      line=line_no)
                rows = _Collector(path, len(fields) - 1, None)
                max_line = _MAX_WORD + _MAX_VALUE * rows.dim
                if limit == 0:
                    break
            rows.add(fields[0], _floats(fields[1:], rows.dim, path, line_no), line=line_no)
            if limit is not None and len(rows.keys) >= limit:
                break
    if rows is None:
        raise FormatError(path, "no vectors (the file is empty)")
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
    if arr.shape[1] == 0:
        raise ValueError(f"vectors must have at least one column (D >= 1), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_keys(keys: Sequence[str], count: int, encoding: str) -> list[bytes]:
    """The keys encoded, after checking they can be stored and read back as the same words."""
    if len(keys) != count:
        raise ValueError(f"keys has {len(keys)} entries but vectors has {count} rows")
    seen, encoded = set(), []
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            raise ValueError(f"keys[{i}] must be a non-empty str, got {key!r}")
        if any(c.isspace() for c in key):
            raise ValueError(f"keys[{i}] = {key!r} contains whitespace, which the word2vec format cannot store")
        if key in seen:
            raise ValueError(f"keys[{i}] = {key!r} is a duplicate; words must be unique")
        seen.add(key)
        try:
            encoded.append(key.encode(encoding))
        except UnicodeEncodeError as exc:
            raise ValueError(f"keys[{i}] = {key!r} cannot be encoded in {encoding} ({exc.reason})") from None
    return encoded


def save_word2vec_format(path, vectors, keys: Sequence[str], binary: bool = False, *,
                         encoding: str = "utf8") -> Path:
    """Write ``vectors`` ([V, D] numpy or torch, any float dtype; stored as float32) with their ``keys`` in the
    word2vec text or binary format, readable by the C tool, gensim and ``load_word2vec_format``.

    Text values are written with 9 significant digits, which restores every float32 exactly. The file is
    written atomically (``fastrepr._io.atomic_write``): a failure leaves a previous file at ``path``
    intact. Memory: one float32 copy of ``vectors`` when they are not float32 already, and the encoded keys.
    Raises ValueError for a key count that differs from V, empty, duplicate, whitespace-containing or
    unencodable keys, before anything is written.
    """
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding {encoding!r} is not a known codec") from None
    arr = _as_matrix(vectors)
    encoded = _check_keys(list(keys), arr.shape[0], encoding)
    count, dim = arr.shape
    fmt = " ".join(["%.9g"] * dim)
    with atomic_write(path, "wb") as f:
        f.write(f"{count} {dim}\n".encode("ascii"))
        little = arr.astype("<f4", copy=False)
        for key, row in zip(encoded, little):
            if binary:
                f.write(key + b" " + row.tobytes() + b"\n")
            else:
                f.write(key + b" " + (fmt % tuple(row.tolist())).encode("ascii") + b"\n")
    return Path(path)
