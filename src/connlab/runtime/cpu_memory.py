"""CPU fast path: keep the memory a training step frees, instead of faulting it in again.

PyTorch allocates CPU tensors with the C library's ``malloc``. glibc serves every block
above its mmap threshold (128 KiB at start, adjusted up to 32 MiB) with a fresh ``mmap``
and unmaps it on ``free``. A training step frees its activations and gradients at the
end, so the next step gets brand-new pages and the kernel zero-fills every one of them on
first touch. For the lecture's autoencoder at batch 128 on 2 cores that was 400,000 to
600,000 page faults and about 2 s of system time per 10 steps — measured, about a sixth of
the step time (``benchmarks/RESULTS.md``).

``keep_freed_memory`` raises glibc's mmap and trim thresholds (``mallopt``), so those
blocks come from the heap and stay there when freed: the next step reuses them without a
fault. The price: the process keeps its peak memory until it exits. It is what jemalloc or
tcmalloc (``LD_PRELOAD``), the usual advice for CPU training, give, without a preload.
Only glibc (Linux) has these knobs; elsewhere the call does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>: keep up to this much free memory at the heap's top
M_MMAP_THRESHOLD = -3  # glibc <malloc.h>: blocks at least this large get their own mmap
KEEP_BYTES = 1 << 30   # 1 GiB: above every activation of the lab's networks at their batch sizes

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks up to ``KEEP_BYTES`` for reuse; True if it now does.

    Process-wide and idempotent; False (and no change) where the C library is not glibc.
    """
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # musl and other C libraries have no mallopt
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _applied = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    return _applied
