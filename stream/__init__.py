"""Real-time facial-paralysis symptom monitor.

One frame's path through the package, in order:
``decode`` (or ``ingest``) -> ``face.detect`` -> ``keyframes`` -> ``face.align`` ->
``buffer`` -> ``au`` -> ``symptoms`` -> ``report`` / ``server``.
"""

__version__ = "0.1.0"
