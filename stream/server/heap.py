"""Keep the ``serve`` process's memory flat on glibc: frame buffers from the OS, freed heap pages back to it.

A server receives ~30 frames a second per session and allocates and frees buffers all the time
(decoded frames of 0.45-0.9 MB, RTP packets, VP8 payloads, snapshots, messages to the analysis
workers). Three glibc behaviours made its RSS grow without bound although nothing leaked:

* glibc raises its mmap threshold to the size of the largest block freed, after which frames come
  from the threads' heaps and small long-lived objects land in the holes they leave;
* free pages in the middle of a heap go back to the OS only on ``malloc_trim``, never by ``free``;
* glibc gives threads their own heaps ("arenas", up to 8 per core); the server's threads come and
  go (aiortc's and the codecs'), and every arena holds its own free holes. At most one per core,
  two at least (``M_ARENA_MAX``), leaves fewer, fuller heaps.

Measured with one 30 fps session and an analysis process (``live_bench.py ingest --pre-encoded``):
~5 MB/s of growth as it was, 0.45 MB/s with the threshold fixed at 128 KiB, 0.06 MB/s with the
heap also trimmed every 5 s (Python's own objects grew ~0.01 MB/s: the session's keyframe series).
With 3 sessions (110 s runs, docs/benchmarks.md "Several sessions"), glibc's heaps grew from 31 to
105 MB (in use: 25 to 28 MB) while the keyframe series were kept as small arrays scattered among
the frames' allocations; with the series packed (``session/findings.py``) they stayed at 31-33 MB.
The arena limit halved the growth while the series were lists (9.6 -> 5.7 MB/min); with the series
packed and no more thread per frame (``ingest.py``) its effect is within the noise of a short run.
Elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, fixed: a frame is always its own mapping
TRIM_INTERVAL_S = 5.0
_M_MMAP_THRESHOLD = -3  # malloc.h
_M_ARENA_MAX = -8


def limit_heap_growth() -> bool:
    """Fix the mmap threshold, one heap per core at most, and a daemon thread that trims the heap;
    False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # musl has neither
        return False
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_ARENA_MAX, max(2, os.cpu_count() or 1))

    def trim_forever() -> None:
        while True:
            time.sleep(TRIM_INTERVAL_S)
            malloc_trim(0)

    threading.Thread(target=trim_forever, name="heap-trim", daemon=True).start()
    return True
