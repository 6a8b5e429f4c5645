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

__version__ = "0.1.0"
