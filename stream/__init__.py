"""Real-time facial-paralysis symptom monitor.

One frame's path through the package, in order:
``decode`` (or ``ingest``) -> ``face.detect`` -> ``keyframes`` -> ``face.align`` ->
``buffer`` -> ``au`` -> ``symptoms`` -> ``report`` / ``server``.
"""

import os as _os

# The matrix products here are small (MTCNN layers, 2x3 fits): OpenBLAS's worker threads only spin
# against the pipeline's own threads. With its default (one per core), analysing no_face.mp4 took
# 26 s and 7 CPU-s on a loaded 2-core machine, with one thread 3.3 s and 1.3 CPU-s. Read when NumPy
# is first imported, so it takes effect for ``python -m stream`` and ``stream-fp``; set the variable
# to override.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The same for OpenCV's own thread pool (DIS flow, resizes, warps): ``analyze`` already runs decoding,
# per-frame work and the AU estimate in three threads, and OpenCV's workers on top of them cost CPU
# without saving wall time. Paired whole-command runs on WolfgangLanger_Pexels.mp4 (2 cores,
# 2026-11-30): 55.5 against 48.7 frames per CPU-second (medians of 3 x 3 runs), wall as fast or
# faster; the results are the same to the bit. Read when cv2 is first imported; the live server sets
# its own count (stream/server/main.py), and the variable overrides this default.
_os.environ.setdefault("OPENCV_FOR_THREADS_NUM", "1")

__version__ = "0.1.0"
