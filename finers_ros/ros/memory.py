"""
glibc malloc settings for a process that receives 25 MB camera frames many times a second.

By default glibc serves each allocation above its mmap threshold (128 KiB, adapting up to
32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when freed, and trims the
heap top beyond 128 KiB. A 3840x2160 rgb8 frame (24.9 MB) taken by rclpy therefore costs
~6000 page faults and the zeroing of 25 MB by the kernel on every frame. Keeping such
buffers in the heap (mmap threshold 32 MiB, the most glibc allows) and not trimming the heap
each time lets the next frame reuse the same, already mapped pages. One arena (instead of
up to 8 per core) and a 64 MiB trim threshold keep those cached frames few: measured on a
node fed 4K at 10 Hz with an instruction a second, the heap settled at ~270 MB instead of
~700 MB (benchmarks/bench_speed.py).

``tune_malloc`` calls ``mallopt`` through ctypes, so the effect holds however the node is
started (console script, ``ros2 run``, ``ros2 launch``), unlike the equivalent environment
variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_TOP_PAD_``,
which glibc reads only when the process starts. ``FINERS_MALLOC_TUNING=0`` turns it off
(benchmarks compare both); any of those ``MALLOC_*_`` variables set by the user wins.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Dict

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

SETTINGS = {  # name -> (mallopt parameter, value, the environment variable that overrides it)
    "mmap_threshold": (M_MMAP_THRESHOLD, 32 * 1024 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    "trim_threshold": (M_TRIM_THRESHOLD, 64 * 1024 * 1024, "MALLOC_TRIM_THRESHOLD_"),
    "top_pad": (M_TOP_PAD, 16 * 1024 * 1024, "MALLOC_TOP_PAD_"),
    "arena_max": (M_ARENA_MAX, 1, "MALLOC_ARENA_MAX"),
}


def tune_malloc(environ=os.environ) -> Dict[str, int]:
    """Apply ``SETTINGS`` with ``mallopt``; returns what was set (empty when off or not glibc)."""
    if environ.get("FINERS_MALLOC_TUNING", "1") == "0":
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = {}
    for name, (parameter, value, variable) in SETTINGS.items():
        if variable in environ:
            continue
        if mallopt(parameter, value) == 1:
            applied[name] = value
    return applied
