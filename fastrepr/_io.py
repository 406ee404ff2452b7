"""Files: the package's one error type for malformed files, atomic writes, and readers that never unpickle.

* ``FormatError``: a ValueError naming the file and, where known, the line or record.
* ``open_read(path)``: a binary stream, ``.gz``/``.bz2`` decompressed; ``stream_errors`` turns a damaged or
  truncated compressed stream (EOFError, zlib.error, BadGzipFile) into a FormatError naming the file.
* ``atomic_write(path, mode)``: every file the package writes goes through it. The data go to a temporary
  file in the target's directory (same file system, so the final ``os.replace`` is atomic), which is
  flushed and fsync'ed before the rename; the directory is fsync'ed after it. A failure at any point
  (an exception in the caller, a full disk, an unencodable string) removes the temporary file and leaves
  the previous file, if any, untouched.
* ``check_writable(path)``: fails early (before minutes of work) when a file cannot be created there.
* ``load_npz(path, names)``: plain numeric arrays of an .npz archive, read without ``pickle``; each
  member's declared shape is checked against its size in the archive before anything is allocated.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import os
import secrets
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

COMPRESSED = (".gz", ".bz2")
# The most a deflate stream can expand (1032:1, RFC 1951's longest match per 2 bits); bzip2 can do more
# in theory but not from numeric arrays. Used to bound what an .npz member may declare.
_MAX_DEFLATE_RATIO = 1032


class FormatError(ValueError):
    """A file that does not hold what its format says. ``str()`` is "<path>: line N: <what>" (or
    "record N"); the attributes ``path``, ``line`` and ``record`` carry the parts."""

    def __init__(self, path, message: str, *, line: int | None = None, record: int | None = None):
        self.path = os.fspath(path)
        self.line, self.record, self.message = line, record, message
        where = self.path + (f": line {line}" if line is not None else "") + (
            f": record {record}" if record is not None else "")
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # picklable (multiprocessing workers re-raise it in the parent)
        return _format_error, (self.path, self.message, self.line, self.record)


def _format_error(path, message, line, record) -> FormatError:
    return FormatError(path, message, line=line, record=record)


# ------------------------------------------------------------------------------------------------ reading

def is_compressed(path) -> bool:
    return os.fspath(path).endswith(COMPRESSED)


def open_read(path) -> BinaryIO:
    """A binary stream over ``path``; ``.gz`` and ``.bz2`` are decompressed (by suffix, as gensim does)."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.open(name, "rb")
    if name.endswith(".bz2"):
        return bz2.open(name, "rb")
    return open(name, "rb")


def data_size(path) -> int | None:
    """Bytes a reader will see: the file's size, or None for a compressed file (its decompressed size is
    not known before reading it; the gzip trailer's ISIZE is modulo 2**32 and per member)."""
    return None if is_compressed(path) else os.path.getsize(path)


@contextlib.contextmanager
def stream_errors(path, where=lambda: {}):
    """Re-raise a damaged compressed stream as a FormatError; ``where()`` gives the line/record reached.
    Real I/O errors (an OSError with an errno) pass through unchanged."""
    try:
        yield
    except FormatError:
        raise
    except (EOFError, zlib.error) as exc:
        raise FormatError(path, f"the compressed data is truncated or damaged ({exc})", **where()) from None
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise FormatError(path, f"the compressed data is truncated or damaged ({exc})", **where()) from None


# ------------------------------------------------------------------------------------------------ writing

def _temp_in(directory: Path, name: str) -> tuple[int, Path]:
    """A new file next to the target, created like any new file (mode 0o666 minus the umask)."""
    for _ in range(100):
        tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None):
    """Write ``path`` atomically (module docstring). ``mode``: "wb" or "w" (text; ``encoding`` default
    UTF-8), "ab" or "a" (the old content is copied into the new file first: still all-or-nothing).
    ``.gz``/``.bz2`` paths are compressed (write modes only). Yields the file object; the rename happens
    when the block exits without an exception. An existing file keeps its permission bits."""
    if mode not in ("wb", "w", "ab", "a"):
        raise ValueError(f"mode must be 'wb', 'w', 'ab' or 'a', got {mode!r}")
    path = Path(path)
    if path.is_symlink():  # replace the file the link points to, not the link
        path = Path(os.path.realpath(path))
    append, text = mode.startswith("a"), not mode.endswith("b")
    if append and is_compressed(path):
        raise ValueError(f"{path}: appending to a compressed file is not supported")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    directory = path.parent
    fd, tmp = _temp_in(directory, path.name)
    raw = os.fdopen(fd, "wb")
    layers: list = []
    try:
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            if append:
                with open(path, "rb") as old:
                    while chunk := old.read(1 << 20):
                        raw.write(chunk)
        stream = raw
        if path.name.endswith(".gz"):
            stream = gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw)
            layers.append(stream)
        elif path.name.endswith(".bz2"):
            stream = bz2.BZ2File(raw, "wb")
            layers.append(stream)
        if text:
            stream = io.TextIOWrapper(stream, encoding=encoding or "utf-8", newline=newline)
            layers.append(stream)
        yield stream
        for layer in reversed(layers):  # flush the text buffer, then the compressor's trailer
            if isinstance(layer, io.TextIOWrapper):
                layer.flush()
                layer.detach()
            else:
                layer.close()
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        os.replace(tmp, path)
    except BaseException:
        for layer in reversed(layers):
            with contextlib.suppress(Exception):
                layer.detach() if isinstance(layer, io.TextIOWrapper) else layer.close()
        with contextlib.suppress(Exception):
            raw.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def check_writable(path, flag: str | None = None, *, directory: bool = False) -> Path:
    """Raise ValueError (naming ``flag`` or the path) unless a file can be created at ``path`` (or, with
    ``directory``, inside the directory ``path``, which is created if missing). Tries it for real: creates
    and removes a temporary file, which also catches read-only file systems and ACLs."""
    path = Path(path)
    label = f"{flag} {path}" if flag else str(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{label}: exists and is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{label}: cannot create the directory ({exc.strerror or exc})") from None
        parent = path
    else:
        if path.is_dir():
            raise ValueError(f"{label}: is a directory; expected a file path")
        parent = path.parent
        if not parent.is_dir():
            raise ValueError(f"{label}: the directory {parent} does not exist")
    try:
        fd, tmp = _temp_in(parent, path.name if not directory else "write-check")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ValueError(f"{label}: cannot write in {parent} ({exc.strerror or exc})") from None
    return path


# ------------------------------------------------------------------------------------------------ npz

def _npy_header(f, path, member: str):
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
        raise FormatError(path, f"member {member}: .npy format version {version} is not supported (1.0, 2.0)")
    except FormatError:
        raise
    except Exception as exc:  # numpy parses the header dict with ast: any failure there is a bad header
        raise FormatError(path, f"member {member}: not a valid .npy header ({type(exc).__name__}: {exc})") from None


def load_npz(path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The members ``names`` of an .npz archive that it holds (others are left out of the result), each a
    plain bool/int/float array. Never unpickles: an object array raises FormatError. Each member's declared
    shape must match its uncompressed size, which must be within deflate's 1032:1 of its compressed size,
    which must fit in the file: so a damaged or hostile header cannot make this allocate more than about
    1000x the file's size. Members not asked for are not read."""
    path = os.fspath(path)
    with open(path, "rb") as fh:  # a missing or unreadable file: OSError, as for any reader
        file_size = os.fstat(fh.fileno()).st_size
        return _npz_members(fh, path, file_size, names)


def _npz_members(fh, path: str, file_size: int, names) -> dict[str, np.ndarray]:
    # From here on, every error is the file's content: offsets and sizes inside the archive are data, so
    # an OSError (a seek to a negative offset) is a damaged file too.
    try:
        archive = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, OSError) as exc:
        raise FormatError(path, f"not an .npz (zip) archive ({exc})") from None
    out = {}
    with archive:
        members = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
        for name in names:
            info = members.get(name)
            if info is None:
                continue
            if info.compress_size > file_size or info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 4096:
                raise FormatError(path, f"member {name}: declares {info.file_size} bytes from {info.compress_size} "
                                        f"compressed bytes in a {file_size}-byte file")
            try:
                with archive.open(info) as f:
                    shape, fortran, dtype = _npy_header(f, path, name)
                    if dtype.hasobject or dtype.fields or dtype.subdtype or dtype.kind not in "biuf":
                        raise FormatError(path, f"member {name}: dtype {dtype} is not a plain numeric array"
                                          + (" (pickled Python objects; refusing to unpickle data from a file)"
                                             if dtype.hasobject else ""))
                    count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
                    nbytes = count * dtype.itemsize
                    if nbytes != info.file_size - f.tell():
                        raise FormatError(path, f"member {name}: shape {shape} of {dtype} needs {nbytes} bytes, "
                                                f"the archive holds {info.file_size - f.tell()}")
                    buf = np.empty(nbytes, np.uint8)
                    view, got = memoryview(buf), 0
                    while got < nbytes:
                        n = f.readinto(view[got:])
                        if not n:
                            raise FormatError(path, f"member {name}: ends after {got} of {nbytes} bytes")
                        got += n
            except FormatError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError,
                    OSError) as exc:
                raise FormatError(path, f"member {name}: damaged ({type(exc).__name__}: {exc})") from None
            arr = buf.view(dtype)
            out[name] = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return out
