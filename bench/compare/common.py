"""Shared by the peers' scripts: threads, timing, the machine's ISA and GEMM ceiling, JSON rows.

Every peer script prints one JSON object per line, the same way `vidfuse bench ... --json` does,
so compare.py can put both sides of a row next to each other. A peer that cannot run prints a
row with "error" instead of disappearing.
"""
import json
import os
import statistics
import sys
import time
import traceback


def threads():
    """The thread count both sides use: $COMPARE_THREADS, else every core (vidfuse's default)."""
    return int(os.environ.get("COMPARE_THREADS", os.cpu_count() or 1))


def setup_torch():
    import torch

    torch.set_num_threads(threads())
    torch.set_grad_enabled(False)
    return torch


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_isa():
    """The same names as vidfuse's cpu_isa(), so rows of both sides can be matched."""
    f = cpu_flags()
    if "avx512_bf16" in f and "amx_bf16" in f:
        return "avx512-bf16+amx"
    if "avx512_bf16" in f:
        return "avx512-bf16"
    if "avx512f" in f and "avx512bw" in f:
        return "avx512"
    if "avx2" in f and "fma" in f:
        return "avx2"
    return "baseline"


def has_native_bf16():
    f = cpu_flags()
    return "avx512_bf16" in f or "amx_bf16" in f


def gemm_gflops(dtype_name="fp32", n=2048, min_seconds=0.5):
    """torch.mm on n x n matrices, best rate: the ceiling measured on the peers' side of a row."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * n**3 / best / 1e9


def time_calls(fn, iters, warmup=1):
    """Runs fn warmup times untimed, then iters times; returns (best, median) seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def emit(row):
    row.setdefault("cpu_isa", cpu_isa())
    row.setdefault("threads", threads())
    print(json.dumps(row), flush=True)


def emit_error(base, exc):
    """A peer that fails is a row that says so (the last line of the exception)."""
    row = dict(base)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    row["error"] = last[:300]
    emit(row)
    print(traceback.format_exc(), file=sys.stderr)


def find_vidfuse(path=None):
    """The vidfuse binary: `path`, else $VIDFUSE, else the repository's build/vidfuse."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (path, os.environ.get("VIDFUSE"), os.path.join(repo, "build", "vidfuse")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no vidfuse binary: pass --vidfuse or set $VIDFUSE")


def peer_versions(*modules):
    out = {}
    for name in modules:
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # noqa: BLE001 -- report, do not fail
            out[name] = "missing (%s)" % type(exc).__name__
    return out
