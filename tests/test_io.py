"""fastrepr._io: atomic writes (a failed write leaves the old file intact, the temporary file is removed, the
mode is a new file's), the early writability check, and the npz loader that never unpickles.
Every writer of the package (vectors, benchmark CSV and plots, projection plots) is checked through it."""
import errno
import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fastrepr import FormatError, bench
from fastrepr._io import atomic_write, check_writable, load_npz
from fastrepr.evaluation import probes
from fastrepr.text import load_word2vec_format, save_word2vec_format


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    path = tmp_path / "f.txt"
    with atomic_write(path, "w") as f:
        f.write("héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)  # like open(path, "w") makes it
    path.chmod(0o640)
    with atomic_write(path, "wb") as f:
        f.write(b"second")
    assert path.read_bytes() == b"second" and (path.stat().st_mode & 0o777) == 0o640
    with atomic_write(path, "ab") as f:
        f.write(b" third")
    assert path.read_bytes() == b"second third"
    with atomic_write(tmp_path / "z.txt.gz", "w") as f:
        f.write("compressed\n")
    assert gzip.decompress((tmp_path / "z.txt.gz").read_bytes()) == b"compressed\n"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["w", "wb", "a"])
def test_atomic_write_failure_leaves_the_old_file(tmp_path, mode):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old content\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path, mode) as f:
            f.write("partial" if "b" not in mode else b"partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old content\n"
    assert _leftovers(tmp_path) == []


def test_atomic_write_failing_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fastrepr._io.os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        with atomic_write(path) as f:
            f.write(b"new" * 1000)
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_atomic_write_through_a_symlink_and_format_error_pickles(tmp_path):
    import pickle

    target = tmp_path / "real.txt"
    target.write_text("old")
    (tmp_path / "link.txt").symlink_to(target)
    with atomic_write(tmp_path / "link.txt", "w") as f:
        f.write("new")
    assert (tmp_path / "link.txt").is_symlink() and target.read_text() == "new"
    err = pickle.loads(pickle.dumps(FormatError("f.txt", "bad", line=3)))
    assert str(err) == "f.txt: line 3: bad" and err.line == 3 and isinstance(err, ValueError)


def test_atomic_write_rejects_bad_modes_and_directories(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "r"):
            pass
    with pytest.raises(IsADirectoryError):
        with atomic_write(tmp_path):
            pass


def _vectors(v=50, d=8):
    rng = np.random.default_rng(0)
    return rng.standard_normal((v, d)).astype(np.float32), [f"w{i}" for i in range(v)]


def test_save_word2vec_failed_overwrites_keep_the_old_file(tmp_path, monkeypatch):
    arr, keys = _vectors()
    path = tmp_path / "v.txt"
    save_word2vec_format(path, arr, keys)
    before = path.read_bytes()
    # an unencodable key in the last row, an ascii encoding of non-ASCII keys: refused before writing
    with pytest.raises(ValueError, match=r"keys\[49\].*cannot be encoded in ascii"):
        save_word2vec_format(path, arr, keys[:-1] + ["naïve"], encoding="ascii")
    with pytest.raises(ValueError, match=r"keys\[49\].*cannot be encoded"):
        save_word2vec_format(path, arr, keys[:-1] + ["\ud800"])  # a lone surrogate: not UTF-8
    # a failure after every row is written (the disk full at the last moment, the rename refused)
    monkeypatch.setattr("fastrepr._io.os.replace",
                        lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError, match="No space"):
        save_word2vec_format(path, arr * 2, keys, binary=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    back, back_keys = load_word2vec_format(path)
    np.testing.assert_array_equal(back, arr)
    assert back_keys == keys and _leftovers(tmp_path) == []


def test_save_word2vec_real_write_error_keeps_the_old_file(tmp_path):
    """A real failing write(2): RLIMIT_FSIZE makes the kernel refuse bytes past 4 KiB (EFBIG), as a full disk
    refuses them (ENOSPC), in a child process."""
    arr, keys = _vectors(200, 16)
    path = tmp_path / "v.bin"
    save_word2vec_format(path, arr[:20], keys[:20], binary=True)
    before = path.read_bytes()
    assert len(before) < 4096
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        from fastrepr.text import save_word2vec_format
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        arr = np.random.default_rng(1).standard_normal((200, 16)).astype(np.float32)
        try:
            save_word2vec_format({str(path)!r}, arr, [f"w{{i}}" for i in range(200)], binary=True)
        except OSError as exc:
            print("failed:", exc.errno)
            sys.exit(0)
        sys.exit(3)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"failed: {errno.EFBIG}" in run.stdout
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    assert load_word2vec_format(path)[1] == keys[:20]


def test_bench_csv_and_plot_are_written_atomically(tmp_path, monkeypatch):
    row = bench.Row("nt_xent", "2N=8 D=4", "float32", "torch", 1.0, "baseline", 2.0, 0.1, 0.2)
    path = bench.save_csv([row], tmp_path, "cpu")
    path2 = bench.save_csv([row], tmp_path, "cpu")
    assert path == path2 and len(path.read_text().splitlines()) == 3  # header once, two rows
    plots = bench.plot(tmp_path, tmp_path / "plots", ["nt_xent"])
    assert plots and plots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before_csv, before_png = path.read_bytes(), plots[0].read_bytes()

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fastrepr._io.os.fsync", broken)
    with pytest.raises(OSError):
        bench.save_csv([row], tmp_path, "cpu")
    with pytest.raises(OSError):
        bench.plot(tmp_path, tmp_path / "plots", ["nt_xent"])
    assert path.read_bytes() == before_csv and plots[0].read_bytes() == before_png
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "plots") == []


def test_projection_plot_failure_keeps_the_old_plot(tmp_path, monkeypatch):
    x, y = torch.randn(40, 5), torch.arange(40) % 3
    path = probes.projection_plot(x, y, tmp_path / "p.png")
    before = path.read_bytes()
    assert before[:4] == b"\x89PNG"
    monkeypatch.setattr("fastrepr._io.os.replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        probes.projection_plot(x * 2, y, path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "new.txt") == tmp_path / "new.txt"
    with pytest.raises(ValueError, match="-o .*missing/v.txt: the directory .* does not exist"):
        check_writable(tmp_path / "missing" / "v.txt", "-o")
    with pytest.raises(ValueError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        check_writable(tmp_path / "file", "--results-dir", directory=True)
    assert check_writable(tmp_path / "made" / "here", directory=True).is_dir()
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot write"):
            check_writable(ro / "v.txt")
    assert _leftovers(tmp_path) == []


def test_load_npz_reads_plain_arrays_and_refuses_objects(tmp_path):
    a, b = np.arange(12, dtype=np.int32).reshape(3, 4), np.asfortranarray(np.random.rand(4, 5))
    np.savez_compressed(tmp_path / "x.npz", a=a, b=b)
    got = load_npz(tmp_path / "x.npz", ["a", "b", "c"])
    assert sorted(got) == ["a", "b"]
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)
    np.savez(tmp_path / "obj.npz", a=a, obj=np.array([{"latents_sizes": [1, 2]}], dtype=object))
    assert load_npz(tmp_path / "obj.npz", ["a"])["a"].tolist() == a.tolist()  # the object is never read
    with pytest.raises(FormatError, match="obj: dtype object.*refusing to unpickle"):
        load_npz(tmp_path / "obj.npz", ["obj"])
    # that no code runs from such a file: tests/test_dsprites.py::test_npz_loader_never_unpickles


def test_load_npz_checks_declared_shapes_before_allocating(tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (4_000_000_000_000,)})
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as z:  # a header claiming 32 TB over 128 bytes of data
        z.writestr("a.npy", header.getvalue() + bytes(128))
    with pytest.raises(FormatError, match="big.npz: member a: shape .* needs 32000000000000 bytes, the archive "
                                          "holds 128"):
        load_npz(tmp_path / "big.npz", ["a"])
    (tmp_path / "not.npz").write_bytes(b"PK\x03\x04 nothing")
    with pytest.raises(FormatError, match="not.npz: not an .npz"):
        load_npz(tmp_path / "not.npz", ["a"])
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz", ["a"])
