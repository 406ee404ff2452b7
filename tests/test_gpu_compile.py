"""Every Triton kernel of fastrepr compiled for sm_80 (A100) and sm_90 (H100, H200) on this CPU-only machine.

Not a ``gpu`` test: it needs triton (and skips only when triton is not installed at all), no GPU. The kernels
are found by ``fastrepr._triton_compile.discover()`` (every @triton.jit function that no other one calls, and
every autotuner), and compiled at the cases their op files declare in ``compile_cases()``, in a child process
with TRITON_INTERPRET=0 (this session runs the interpreter, under which kernels cannot be compiled). Checks:
every kernel has compile cases; every compile succeeds; every config that a prune keeps, and every plain
launch, fits the card's shared memory; the prunes' estimates bound what Triton allocates.

The whole matrix (every case x every autotune config x the archs each case is launched on: 2,760 compiles)
takes hours on two cores, so by default CI compiles a cover of it (``fastrepr._triton_compile.select``, about
150 compiles): for each kernel and arch, cases until every dtype and every value of every constexpr has been
compiled, and every autotune config at the case where the prune keeps some configs and drops others.
``FASTREPR_GPU_COMPILE=full`` compiles everything (as benchmarks/triton_resources.py does, which records registers
and spills in benchmarks/RESULTS.md). Configs the prune drops are compiled to LLVM IR only, where Triton fixes
their shared memory. Compiles are cached in pytest's cache directory (.pytest_cache), so a rerun recompiles only
kernels whose source changed.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

LIMITS = {80: 166_912, 90: 232_448}  # bytes per block (opt-in): A100; H100 and H200
TIER = os.environ.get("FASTREPR_GPU_COMPILE", "ci")
CHILD_TIMEOUT_S = 6 * 3600 if TIER == "full" else 1200


def _child_env(cache_dir) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(cache_dir))
    env.pop("FASTREPR_BACKEND", None)
    return env


@pytest.fixture(scope="module")
def report(request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache_dir = cache.mkdir("triton-gpu-compile") if cache is not None else tmp_path_factory.mktemp("triton")
    out = tmp_path_factory.mktemp("gpu_compile") / "report.json"
    code = textwrap.dedent(f"""
        import json
        from fastrepr import _triton_compile as c
        jobs = c.select(c.jobs(c.discover()), {TIER!r})
        with open({str(out)!r}, "w") as f:
            json.dump(c.report(jobs, processes=2), f)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=_child_env(cache_dir), capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-6000:]
    data = json.loads(out.read_text())
    times = [r["seconds"] for r in data["results"]]
    print(f"\ngpu compile ({TIER}): {len(times)} compiles, {sum(times):.0f} s of compile time")
    return data


def test_limits_match_the_library():
    from fastrepr import _triton

    assert _triton.SHARED_MEMORY_PER_BLOCK == LIMITS


def test_every_kernel_has_compile_cases(report):
    assert report["missing"] == [], "kernels without compile cases (declare them in the op file's compile_cases())"


def test_every_kernel_is_compiled_for_both_archs(report):
    found = {(module, k) for module, kernels in report["kernels"].items() for k in kernels}
    assert found, "discovery found no Triton kernel in fastrepr"
    compiled = {(r["module"], r["kernel"], r["arch"]) for r in report["results"]}
    assert {(m, k, arch) for m, k in found for arch in LIMITS} <= compiled


def test_discovery_finds_a_kernel_without_cases(tmp_path):
    """A new kernel without a compile case fails the check above; a helper called from a kernel needs none."""
    pkg = tmp_path / "newops"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "op.py").write_text(textwrap.dedent("""
        import triton
        import triton.language as tl

        @triton.jit
        def _helper(x):
            return x * 2

        @triton.jit
        def _new_kernel(x_ptr, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            tl.store(x_ptr + offs, _helper(tl.load(x_ptr + offs)))
    """))
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from fastrepr import _triton_compile as c; "
            "print(json.dumps(c.missing_cases('newops')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=_child_env(tmp_path / "cache"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["newops.op: _new_kernel"]


def test_every_case_compiles(report):
    failed = [f"{r['kernel']} [{r['label']} {r['config_label']}] sm_{r['arch']}: {r['error'][-600:]}"
              for r in report["results"] if r["error"]]
    assert not failed, "\n".join(failed[:10])


def _by_case(report):
    out = {}
    for r in report["results"]:
        out.setdefault((r["module"], r["case"], r["arch"]), {})[r["config"]] = r
    return out


def test_launched_configs_fit_shared_memory(report):
    """Plain launches and the autotune configs that the prune keeps need no more than the card has, and the
    prune keeps a config at every launch (else the launcher must choose another tiling on that card)."""
    over = []
    for (module, case, arch), results in _by_case(report).items():
        keeps = report["prune_keeps"].get(f"{module}|{case}|{arch}", [0])
        if not keeps:
            label = report["cases"][module][case]["label"]
            over.append(f"{module} case {case} [{label}] sm_{arch}: no autotune config fits")
        for ki in keeps:
            r = results.get(ki)
            if r is not None and r["shared"] is not None and r["shared"] > LIMITS[arch]:
                over.append(f"{r['kernel']} [{r['label']} {r['config_label']}] sm_{arch}: {r['shared']} bytes "
                            f"> {LIMITS[arch]}")
    assert not over, "\n".join(over)


def test_prune_estimates_bound_what_triton_allocates(report):
    """For every compiled autotune config: estimate >= metadata.shared, or the prune decides as the real fit."""
    wrong = []
    for r in report["results"]:
        if r["estimate"] is None or r["shared"] is None:
            continue
        limit = LIMITS[r["arch"]]
        if r["estimate"] < r["shared"] and (r["estimate"] <= limit) != (r["shared"] <= limit):
            wrong.append(f"{r['kernel']} [{r['label']} {r['config_label']}] sm_{r['arch']}: estimate "
                         f"{r['estimate']} < {r['shared']} bytes, and the prune keeps a config that does not fit")
    assert not wrong, "\n".join(wrong)


def test_autotuned_kernels_have_a_shared_memory_prune(report):
    tuned = [r for r in report["results"] if r["config_label"]]
    assert tuned, "no autotuned kernel was compiled"
    assert all(r["estimate"] is not None for r in tuned), "an autotuner without fastrepr._triton.SharedMemoryPrune"


def test_the_issues_oversized_configs_are_pruned(report):
    """Issue 12 measured two contrastive backward configs over an H100 block's 232,448 bytes in fp32 at D=128:
    (BLOCK_M, BLOCK_N, warps, stages) = (64, 128, 8, 3) needs 329,728 bytes and (128, 128, 8, 2) 263,168."""
    module = "fastrepr.ops.contrastive"
    oversized = {"BLOCK_M=64,BLOCK_N=128 w8 s3", "BLOCK_M=128,BLOCK_N=128 w8 s2"}
    checked = 0
    for ci, case in enumerate(report["cases"][module]):
        if (case["kernel"] == "_contrastive_stats_bwd_kernel" and case["label"].startswith("float32/")
                and "BLOCK_D=128 SINGLE_D=T" in case["label"] and 90 in case["arches"]):
            kept = {case["configs"][k] for k in report["prune_keeps"][f"{module}|{ci}|90"]}
            assert kept and not kept & oversized, (case["label"], kept)
            checked += 1
    assert checked >= 6  # (ieee, tf32) x three weight combinations, with and without the fused normalization
