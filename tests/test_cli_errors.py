"""A user's mistake on the command line is one line on stderr naming the flag or file, exit code 2, and is
caught before any long work; a traceback is for bugs only."""
import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastrepr import cli
from fastrepr.text import save_word2vec_format

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    save_word2vec_format(d / "v.txt", np.ones((3, 4), np.float32), ["a", "b", "c"])
    (d / "lying.txt").write_bytes(b"1000000000000 3\nfoo 1 2 3\n")
    (d / "wrongdim.txt").write_bytes(b"3 5\nfoo 1 2 3\nbar 4 5 6\nbaz 7 8 9\n")
    (d / "cut.txt.gz").write_bytes(gzip.compress(b"2 2\nfoo 1 2\nbar 3 4\n")[:-8])
    (d / "corpus.txt").write_text("a b c d e f g\n" * 50)
    (d / "q.txt").write_text("no section header here\n")
    (d / "notzip.npz").write_bytes(b"not a zip")
    (d / "file").write_text("x")
    return d


# (arguments, what the one line must contain); {d} is the files directory
MISTAKES = [
    ("word2vec {d}/missing.txt -o {d}/o.txt", "argument corpus: {d}/missing.txt: no such file"),
    ("word2vec {d} -o {d}/o.txt", "is a directory"),
    ("word2vec {d}/corpus.txt -o {d}/missing/dir/v.txt", "-o/--output {d}/missing/dir/v.txt: the directory"),
    ("word2vec {d}/corpus.txt -o {d}", "-o/--output {d}: is a directory"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --size x", "argument --vector-size/--size: invalid int value: 'x'"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --size 0", "--vector-size/--size: vector_size must be"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --window -1", "--window: window must be"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --negative 0 --hs 0", "--negative: negative=0 with hs=0"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --device tpu", "argument --device: 'tpu' is not a device"),
    ("word2vec {d}/corpus.txt -o {d}/o.txt --hs 2", "argument --hs: invalid choice"),
    ("eval-words {d}/missing.bin", "argument vectors: {d}/missing.bin: no such file"),
    ("eval-words {d}/lying.txt", "{d}/lying.txt: line 1: the header declares 1000000000000 vectors"),
    ("eval-words {d}/wrongdim.txt", "{d}/wrongdim.txt: line 2: the header declares dimension 5"),
    ("eval-words {d}/cut.txt.gz", "{d}/cut.txt.gz: line 3: the compressed data is truncated"),
    ("eval-words {d}/v.txt --analogies {d}/nope.txt", "argument --analogies: {d}/nope.txt: no such file"),
    ("eval-words {d}/v.txt --analogies {d}/q.txt", "{d}/q.txt: line 1: Missing section header"),
    ("eval-words {d}/v.txt --pairs {d}/nope.tsv", "argument --pairs: {d}/nope.tsv: no such file"),
    ("eval-words {d}/v.txt --limit -1", "argument --limit: must be a non-negative integer"),
    ("eval-words {d}/v.txt --limit 0", "{d}/v.txt: no vectors to evaluate (--limit 0)"),
    ("eval-words {d}/v.txt --restrict-vocab 0", "argument --restrict-vocab: must be a positive integer"),
    ("disentangle --npz {d}/missing.npz", "argument --npz: {d}/missing.npz: no such file"),
    ("disentangle --npz {d}/notzip.npz", "{d}/notzip.npz: not an .npz (zip) archive"),
    ("disentangle --threads 0", "argument --threads: must be a positive integer"),
    ("disentangle --metrics mig,nope", "--metrics: unknown metric(s) ['nope']"),
    ("disentangle --representation nope", "--representation nope: unknown representation"),
    ("disentangle --representation no_such_module:f", "--representation no_such_module:f: No module named"),
    ("disentangle --save", "--save records the comparison's times: add --compare-reference"),
    ("disentangle --compare-reference --save --results-dir {d}/file", "--results-dir {d}/file: exists and is not"),
    ("bench --op nope", "--op: unknown benchmark(s) nope"),
    ("bench --op nt_xent --sizes axb", "--sizes axb: nt_xent: a size must give 2NxD"),
    ("bench --op nt_xent --sizes 0x4", "--sizes 0x4: sizes must be positive integers"),
    ("bench --budget -1", "argument --budget: must be a positive finite number"),
    ("bench --op nt_xent --results-dir {d}/file", "--results-dir {d}/file: exists and is not a directory"),
    ("nope", "argument command: invalid choice: 'nope'"),
]
if NO_CUDA:
    MISTAKES += [(f"{cmd} --device cuda", "argument --device: cuda: CUDA is not available")
                 for cmd in ("word2vec {d}/corpus.txt -o {d}/o.txt", "eval-words {d}/v.txt", "disentangle",
                             "bench --op nt_xent")]


@pytest.mark.parametrize("args, message", MISTAKES)
def test_a_mistake_is_one_line_and_exit_code_2(files, capsys, monkeypatch, args, message):
    from fastrepr.text import word2vec

    def no_training(*a, **k):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(word2vec.Word2Vec, "train", no_training)
    argv = args.format(d=files).split()
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip("\n")
    assert "\n" not in err, err
    assert err.startswith(f"fastrepr{' ' + argv[0] if argv[0] != 'nope' else ''}: error: "), err
    assert message.format(d=files) in err, err
    assert "Traceback" not in captured.err + captured.out


def test_console_script_exit_code_and_single_line(files):
    run = subprocess.run([sys.executable, "-m", "fastrepr", "word2vec", str(files / "corpus.txt"), "-o",
                          str(files / "missing" / "v.txt")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "-o/--output" in run.stderr and "Traceback" not in run.stderr


def test_traceback_on_request(files, monkeypatch):
    monkeypatch.setenv("FASTREPR_TRACEBACK", "1")
    with pytest.raises(ValueError, match="the directory"):
        cli.main(["word2vec", str(files / "corpus.txt"), "-o", str(files / "missing" / "v.txt")])


def test_help_returns_zero(capsys):
    assert cli.main(["word2vec", "--help"]) == 0
    assert "--vector-size" in capsys.readouterr().out
