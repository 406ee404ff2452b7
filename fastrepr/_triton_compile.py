"""Ahead-of-time compilation of fastrepr's Triton kernels for NVIDIA GPUs, on a machine without one.

``discover()`` finds every launched Triton kernel in the package: the ``@triton.jit`` functions that no other
one calls (helpers are compiled inside the kernels that call them), and the ``triton.autotune`` wrappers. Each
op file declares how its launchers call its kernels, as ``compile_cases()`` (``fastrepr._triton.CompileCase``);
``jobs()`` expands those over the autotune configs and the target architectures, and ``compile_job()`` compiles
one with ``triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", arch, 32))``:
the signature and the divisibility hints come from Triton's own launch-time specialization of the declared
arguments, so the compile is the one a launch on that card would do. A result holds the shared memory the
compiled kernel needs, the estimate of the kernel's autotune prune, and (from the ``ptxas -v`` log of the
ptxas that triton ships) its registers and spills.

Kernels defined under Triton's interpreter cannot be compiled, so this runs in a process started with
``TRITON_INTERPRET=0`` before fastrepr is imported (tests/test_gpu_compile.py, benchmarks/triton_resources.py).
A compile takes seconds (minutes for the largest contrastive tiles); set ``TRITON_CACHE_DIR`` to reuse them.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import os
import pkgutil
import re
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from . import _triton
from ._triton import SHARED_MEMORY_PER_BLOCK

ARCHES = tuple(SHARED_MEMORY_PER_BLOCK)
_SKIP = {"fastrepr.__main__"}  # runs the command line when imported


def _triton_types():
    from triton.runtime.autotuner import Autotuner, Heuristics
    from triton.runtime.jit import JITFunction
    return JITFunction, (Autotuner, Heuristics)


def base_function(kernel):
    """The @triton.jit function under autotune/heuristics wrappers."""
    jit, _ = _triton_types()
    while not isinstance(kernel, jit):
        kernel = kernel.fn
    return kernel


def _modules(package: str = "fastrepr"):
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name not in _SKIP:
            yield importlib.import_module(info.name)


def _called(fn) -> set:
    """The @triton.jit functions that fn's body calls (by name or module attribute, resolved in its globals)."""
    jit, _ = _triton_types()
    found = set()
    for node in ast.walk(ast.parse(fn.src)):
        if not isinstance(node, ast.Call):
            continue
        target, chain = node.func, []
        while isinstance(target, ast.Attribute):
            chain.append(target.attr)
            target = target.value
        if not isinstance(target, ast.Name):
            continue
        obj = fn.fn.__globals__.get(target.id)
        for attr in reversed(chain):
            obj = getattr(obj, attr, None)
        if isinstance(obj, jit):
            found.add(obj)
    return found


def discover(package: str = "fastrepr") -> dict:
    """{module name: (kernels, tuners)}: the launched @triton.jit functions each module defines (those no
    @triton.jit function calls) and the autotune/heuristics wrappers it defines, for every module with either."""
    if _triton.INTERPRET:
        raise RuntimeError("fastrepr's kernels were defined under Triton's interpreter (TRITON_INTERPRET=1) and "
                           "cannot be compiled: start the process with TRITON_INTERPRET=0")
    jit, wrappers = _triton_types()
    defined = {}
    for module in _modules(package):
        mine = [v for v in vars(module).values() if isinstance(v, jit) and v.fn.__module__ == module.__name__]
        tuners = [v for v in vars(module).values()
                  if isinstance(v, wrappers) and base_function(v).fn.__module__ == module.__name__]
        if mine or tuners:
            defined[module.__name__] = (mine, tuners)
    helpers = set().union(*(_called(fn) for mine, _ in defined.values() for fn in mine))
    return {name: ([f for f in mine if f not in helpers], tuners) for name, (mine, tuners) in defined.items()}


@functools.lru_cache(maxsize=None)
def cases(module_name: str) -> list:
    """The module's declared compile cases (an op file's ``compile_cases()``; none when it has no such function)."""
    return list(getattr(importlib.import_module(module_name), "compile_cases", lambda: ())())


def configs(case) -> list:
    """The autotune configs a case is compiled at ([None] for a plain kernel)."""
    _, wrappers = _triton_types()
    return list(case.kernel.configs) if isinstance(case.kernel, wrappers) else [None]


def _build(case, config):
    """(jit function, constexprs, options) of a case at an autotune config (None for a plain kernel)."""
    constexprs, options = dict(case.constexprs), dict(case.options)
    if config is not None:
        constexprs.update(config.kwargs)
        options.update(num_warps=config.num_warps, num_stages=config.num_stages, num_ctas=config.num_ctas)
        if config.maxnreg is not None:
            options["maxnreg"] = config.maxnreg
    return base_function(case.kernel), constexprs, options


def _compile_key(case, config, arch) -> str:
    fn, constexprs, options = _build(case, config)
    signature, consts, attrs = _signature(fn, case.args, constexprs)
    return repr((fn.__module__, fn.__name__, signature, sorted(consts.items()), sorted(attrs.items()),
                 sorted(options.items()), arch))


def jobs(module_names, arches=ARCHES) -> list[tuple[str, int, int, int]]:
    """(module, case index, config index, arch) for every case x config x arch the case is launched on, each
    distinct compile once (two cases can specialize alike, e.g. D = 256 and 512 in chunks), the costliest first."""
    out, seen = [], set()
    for name in module_names:
        for ci, case in enumerate(cases(name)):
            for ki, config in enumerate(configs(case)):
                for arch in (a for a in arches if a in case.arches):
                    key = _compile_key(case, config, arch)
                    if key not in seen:
                        seen.add(key)
                        out.append((name, ci, ki, arch))

    def cost(job):
        case = cases(job[0])[job[1]]
        config = configs(case)[job[2]]
        warps = config.num_warps if config else case.options.get("num_warps", 4)
        return -(warps * (config.num_stages if config else 1))
    return sorted(out, key=cost)


def _features(case) -> set:
    dtypes = tuple(str(v) for v in case.args.values() if not isinstance(v, (int, float)))
    return {("dtypes", dtypes)} | {(k, repr(v)) for k, v in {**case.constexprs, **case.options}.items()}


def _cost(case) -> int:
    """A proxy of a case's compile time: its integer constexprs (tile sizes) times the square of its widest
    dtype (wide dtypes compile to more registers and, for fp32 IEEE dots, to FMA loops ptxas takes minutes on)."""
    size = max(v.itemsize for v in case.args.values() if not isinstance(v, (int, float))) ** 2
    for v in case.constexprs.values():
        if isinstance(v, int) and not isinstance(v, bool):
            size *= v
    return size


def select(job_list, tier: str = "ci") -> list:
    """The jobs of a tier. "full": all. "ci", a cover for a CPU CI run, for each kernel and arch: cases chosen
    greedily (most new features, then the cheapest) until every dtype combination and every value of every
    constexpr has appeared, each at the first autotune config; and for an autotuned kernel, every config at the
    case where its prune keeps and drops the most evenly (the shared-memory limit's boundary)."""
    if tier == "full":
        return list(job_list)
    if tier != "ci":
        raise ValueError(f"tier must be 'ci' or 'full', got {tier!r}")
    groups = {}
    for name, ci, _, arch in job_list:
        groups.setdefault((name, id(cases(name)[ci].kernel), arch), set()).add(ci)
    chosen = set()
    for (name, _, arch), indices in groups.items():
        indices = sorted(indices)
        todo = set().union(*(_features(cases(name)[ci]) for ci in indices))
        while todo:
            best = max(indices, key=lambda ci: (len(_features(cases(name)[ci]) & todo), -_cost(cases(name)[ci])))
            todo -= _features(cases(name)[best])
            chosen.add((name, best, 0, arch))
        if configs(cases(name)[indices[0]]) != [None]:
            def balance(ci):
                kept, total = len(prune_keeps(cases(name)[ci], arch)), len(configs(cases(name)[ci]))
                return min(kept, total - kept), -_cost(cases(name)[ci])
            boundary = max(indices, key=balance)
            chosen.update((name, boundary, ki, arch) for ki in range(len(configs(cases(name)[boundary]))))
    return [j for j in job_list if j in chosen]


def _signature(fn, args: dict, constexprs: dict):
    """(signature, constexprs by index, attrs) as JITFunction.run builds them at a launch with these args."""
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import MockTensor, native_specialize_impl

    names = list(fn.arg_names)
    extra = set(args) | set(constexprs)
    if extra - set(names) or set(names) - extra:
        raise ValueError(f"{fn.__name__}: compile case arguments {sorted(extra)} do not match the kernel's "
                         f"parameters {names}")
    signature, consts, attrs = {}, {}, {}
    for i, name in enumerate(names):
        if name in constexprs:
            signature[name], consts[(i,)] = "constexpr", constexprs[name]
            continue
        kind, spec = native_specialize_impl(BaseBackend, MockTensor.wrap_dtype(args[name]), False, True, True)
        signature[name] = kind
        if kind == "constexpr":  # an int equal to 1
            consts[(i,)] = spec
        elif spec:
            attrs[(i,)] = BaseBackend.parse_attr(spec)
    return signature, consts, attrs


def _ptxas_usage(log: str) -> dict:
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    stack = re.search(r"(\d+) bytes stack frame", log)
    return {"registers": int(regs.group(1)) if regs else None,
            "spill_stores": int(spills.group(1)) if spills else None,
            "spill_loads": int(spills.group(2)) if spills else None,
            "stack": int(stack.group(1)) if stack else None}


def _ptxas_log(ptx: str, arch: int) -> str:
    """ptxas -v of the compiled PTX (for a cached compile, whose log is gone) with the ptxas triton ships and the
    flags its make_cubin passes (line info, --regAllocOptLevel=2; FP fusion is on by default, so no --fmad)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        done = subprocess.run([get_ptxas(arch).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
                               f"--gpu-name={sm_arch_from_capability(arch)}", src, "-o", os.path.join(tmp, "k.o")],
                              capture_output=True, text=True)
    return done.stderr + done.stdout


class _SharedOnly(Exception):
    def __init__(self, shared: int):
        super().__init__(shared)
        self.shared = shared


def _stop_after_llir(*args):
    """Triton's add_stages_inspection_hook: end the compile after LLVM IR, where Triton has allocated (and
    recorded in metadata["shared"]) the shared memory. Called without arguments for its cache key."""
    if not args:
        return "fastrepr-stop-after-llir", "1"
    stages = args[1]

    def stop(src, metadata):
        raise _SharedOnly(metadata["shared"])
    stages["ptx"] = stop


def compile_job(job: tuple[str, int, int, int]) -> dict:
    """Compile one (module, case, config, arch); returns what tests/test_gpu_compile.py checks.

    A config that the case's prune drops on this arch is compiled only to LLVM IR: that fixes the shared memory
    (to check the prune against), and the autotuner never compiles it further; the ptxas runs of such configs,
    which spill heavily, are the slowest of all."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name, ci, ki, arch = job
    case = cases(name)[ci]
    config = configs(case)[ki]
    fn, constexprs, options = _build(case, config)
    result = {"module": name, "kernel": fn.__name__, "case": ci, "config": ki, "arch": arch,
              "label": case.label(), "config_label": _config_label(config), "shared": None, "estimate": None,
              "error": None, **_ptxas_usage("")}
    prune = getattr(case.kernel, "early_config_prune", None)
    if config is not None and isinstance(prune, _triton.SharedMemoryPrune):
        result["estimate"] = prune.estimate(config, *_prune_args(case), arch)
    result["pruned"] = config is not None and ki not in prune_keeps(case, arch)
    start = time.perf_counter()
    knobs.nvidia.dump_ptxas_log = True
    knobs.runtime.add_stages_inspection_hook = _stop_after_llir if result["pruned"] else None
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(ASTSource(fn, *_signature(fn, case.args, constexprs)),
                                      target=GPUTarget("cuda", arch, 32), options=options)
        result["shared"] = compiled.metadata.shared
        text = log.getvalue()
        result.update(_ptxas_usage(text if "Used" in text else _ptxas_log(compiled.asm["ptx"], arch)))
    except _SharedOnly as stop:
        result["shared"] = stop.shared
    except Exception as exc:  # reported per case by the test, with the compiler's message
        result["error"] = f"{type(exc).__name__}: {exc}"[-4000:]
    finally:
        knobs.runtime.add_stages_inspection_hook = None
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _config_label(config) -> str:
    if config is None:
        return ""
    tiles = ",".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{tiles} w{config.num_warps} s{config.num_stages}"


def _prune_args(case):
    """(named_args, kwargs) as the autotuner hands them to its prune at a launch of this case."""
    from triton.runtime.jit import MockTensor
    return {k: MockTensor.wrap_dtype(v) for k, v in case.args.items()}, dict(case.constexprs)


def prune_keeps(case, arch: int) -> list[int]:
    """Indices of the autotune configs the case's prune keeps on a card of this architecture (all of them
    without a SharedMemoryPrune)."""
    prune, all_configs = getattr(case.kernel, "early_config_prune", None), configs(case)
    if not isinstance(prune, _triton.SharedMemoryPrune):
        return list(range(len(all_configs)))
    kept = prune.keep(all_configs, *_prune_args(case), arch, SHARED_MEMORY_PER_BLOCK[arch])
    return [i for i, c in enumerate(all_configs) if any(c is k for k in kept)]


def run(job_list, processes: int = 2, sink=None) -> list[dict]:
    """compile_job over job_list in a pool of processes (each imports fastrepr once); sink(result), if given,
    sees each result as it comes (in job order)."""
    with contextlib.ExitStack() as stack:
        if processes <= 1:
            results = map(compile_job, job_list)
        else:
            results = stack.enter_context(ProcessPoolExecutor(processes)).map(compile_job, job_list, chunksize=1)
        out = []
        for r in results:
            out.append(r)
            if sink is not None:
                sink(r)
        return out


def missing_cases(package: str = "fastrepr") -> list[str]:
    """"module: kernel" for every discovered kernel or autotuner that no compile case of its module covers."""
    missing = []
    for name, (kernels, tuners) in discover(package).items():
        declared = cases(name)
        covered = {id(base_function(c.kernel)) for c in declared} | {id(c.kernel) for c in declared}
        missing += [f"{name}: {k.__name__}" for k in kernels if id(k) not in covered]
        missing += [f"{name}: {base_function(t).__name__} (autotuned)" for t in tuners if id(t) not in covered]
    return missing


def report(job_list, processes: int = 2, sink=None) -> dict:
    """Everything tests/test_gpu_compile.py checks, as plain data: the compile results, the kernels without
    compile cases, and for each autotuned case and arch the configs its prune keeps."""
    found = discover()
    kernels = {name: sorted({k.__name__ for k in mine} | {base_function(t).__name__ for t in tuners})
               for name, (mine, tuners) in found.items()}
    declared = {name: [{"kernel": base_function(c.kernel).__name__, "label": c.label(), "arches": c.arches,
                        "configs": [_config_label(k) for k in configs(c)]} for c in cases(name)] for name in found}
    keeps = {f"{name}|{ci}|{arch}": prune_keeps(case, arch) for name in found
             for ci, case in enumerate(cases(name)) if configs(case) != [None] for arch in case.arches}
    return {"kernels": kernels, "cases": declared, "missing": missing_cases(), "prune_keeps": keeps,
            "results": run(job_list, processes, sink)}
