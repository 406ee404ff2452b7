"""A short seeded fuzz of every file reader (benchmarks/fuzz_readers.py, the same code as the long run):
mutated bytes of small valid files, plain and .gz. Each case parses or raises fastrepr.FormatError naming the
file; never MemoryError, never more than 64 MiB of allocation, never a hang."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz_readers = _fuzz_module()


@pytest.mark.parametrize("kind", fuzz_readers.KINDS)
def test_reader_fuzz(tmp_path, kind):
    counts, failures = fuzz_readers.fuzz(tmp_path, seed=20240601, cases=300, kinds=[kind], max_mb=64.0,
                                         timeout_s=20.0)
    assert not failures, "\n".join(f"{k}:{i} ({name}): {detail}" for k, i, name, detail, _ in failures[:10])
    # the mutations reach both outcomes: some files still parse, most are rejected with the file named
    assert counts[kind, "error"] > 30 and counts[kind, "parsed"] + counts[kind, "error"] == 300


def test_mutations_are_seeded():
    import random

    data = b"3 2\nfoo 1 2\nbar 3 4\nbaz 5 6\n"
    a = [fuzz_readers.mutate(random.Random(f"7:{i}"), data) for i in range(50)]
    b = [fuzz_readers.mutate(random.Random(f"7:{i}"), data) for i in range(50)]
    assert a == b and len(set(a)) > 40


def test_detection_never_reads_a_binary_file_wrong():
    """Random binary files (D = 1, 2, 4, 16; normal values over 60 decades, and raw random bytes) read with
    binary=None come back bit-exact or raise; the long count is `fuzz_readers.py --detection 20000`."""
    for (values, dim), (right, raised, wrong) in fuzz_readers.detection_errors(250, seed=5).items():
        assert wrong == 0, (values, dim)
        assert right >= 245, (values, dim, raised)
