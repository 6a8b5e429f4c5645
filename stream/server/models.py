"""The model pool: the executor every session's model work runs in, and what sessions share.

One bounded pool for all sessions: more patients share the same cores instead of each adding
threads. The detector network is stateless and loaded once; each session wraps it in its own
tracker (inside ``Pipeline``) and has its own AU estimator (per-session neutral reference). The
normal co-occurrence matrix is read once, at start, so a missing file fails the server, not a patient.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from stream.face.detect import FaceDetector, build_detector
from stream.pipeline import Pipeline
from stream.server.executor import ANALYSIS, INGEST, PriorityExecutor
from stream.server.settings import ServerSettings
from stream.symptoms.normal import load_normal_cooccurrence


class ModelPool:
    def __init__(
        self, settings: ServerSettings, executor: Executor, pipeline_factory: Callable[[], Pipeline] | None = None
    ) -> None:
        """``pipeline_factory`` builds each session's pipeline instead of the default (tests hold or slow it)."""
        self.settings = settings
        self.executor = executor
        # With a PriorityExecutor a keyframe's analysis never waits behind queued frame ingests.
        self.analysis_executor: Executor = executor.at(ANALYSIS) if isinstance(executor, PriorityExecutor) else executor
        self.ingest_executor: Executor = executor.at(INGEST) if isinstance(executor, PriorityExecutor) else executor
        self.normal: np.ndarray = load_normal_cooccurrence(settings.analysis.normal_cooccurrence)
        self._factory = pipeline_factory
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    def new_pipeline(self) -> Pipeline:
        """Build a session's pipeline (call in the executor: the first call loads weights)."""
        if self._factory is not None:
            return self._factory()
        cfg = self.settings.analysis
        with self._lock:
            if self._detector is None:
                self._detector = build_detector(cfg.detector, weights=cfg.weights, device=cfg.device)
        # The series lives in SQLite: the pipeline keeps no per-keyframe history, memory stays flat.
        return Pipeline(
            cfg, detector=self._detector, mirrored=self.settings.mirrored, keep_series=False, normal=self.normal
        )
