"""``serve``'s glibc settings (stream/server/heap.py), checked in a fresh process with glibc's own report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Threads that each malloc while all are alive: glibc gives every new thread a heap of its own
# ("arena") until its limit; malloc_info then lists one <heap> per arena.
_COUNT_HEAPS = r"""
import ctypes, os, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
from stream.server.heap import limit_heap_growth
if sys.argv[2] == "limited":
    assert limit_heap_growth()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
threads = int(sys.argv[3])
barrier = threading.Barrier(threads + 1)
def allocate():
    libc.malloc(4096)
    barrier.wait()  # every thread holds its heap until all have allocated
    barrier.wait()
workers = [threading.Thread(target=allocate) for _ in range(threads)]
for w in workers:
    w.start()
barrier.wait()
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(f))
    libc.fclose(ctypes.c_void_p(f))
    print(open(out.name).read().count("<heap nr="))
barrier.wait()
for w in workers:
    w.join()
"""


def heaps(mode: str, threads: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_HEAPS, str(REPO), mode, str(threads)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout.strip())


def glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):  # musl: no such name
        return False


@pytest.mark.skipif(not glibc(), reason="glibc only")
def test_the_server_keeps_at_most_one_heap_per_core_however_many_threads_allocate():
    limit = max(2, os.cpu_count() or 1)
    threads = limit + 6
    assert heaps("default", threads) > limit  # glibc alone: a heap per thread (up to 8 per core)
    assert heaps("limited", threads) <= limit
