"""The model pool: the executor every session's model work runs in, and what sessions share.

One bounded pool for all sessions: more patients share the same cores instead of each adding
threads. The detector network is stateless and loaded once (per analysis process); each session
wraps it in its own tracker (inside ``Pipeline``) and has its own AU estimator (per-session neutral
reference). With ``analysis_processes`` the pipelines run in worker processes
(``analysis_workers.py``) and the threads here wait for them; with 0 they run in these threads.
The normal co-occurrence matrix is read once, at start, so a missing file fails the server, not a patient.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from stream.face.detect import FaceDetector, build_detector
from stream.pipeline import Pipeline
from stream.server.analysis_workers import AnalysisWorkers
from stream.server.executor import ANALYSIS, INGEST, PriorityExecutor
from stream.server.settings import ServerSettings
from stream.session.analyser import FrameAnalyser, LocalAnalyser
from stream.symptoms.normal import load_normal_cooccurrence


class ModelPool:
    def __init__(
        self, settings: ServerSettings, executor: Executor, pipeline_factory: Callable[[], Pipeline] | None = None
    ) -> None:
        """``pipeline_factory`` builds each session's pipeline instead of the default (tests hold or slow it);
        its pipelines run in this process, whatever ``settings.analysis_processes`` says."""
        self.settings = settings
        self.executor = executor
        # With a PriorityExecutor a keyframe's analysis never waits behind queued frame ingests.
        self.analysis_executor: Executor = executor.at(ANALYSIS) if isinstance(executor, PriorityExecutor) else executor
        self.ingest_executor: Executor = executor.at(INGEST) if isinstance(executor, PriorityExecutor) else executor
        self.normal: np.ndarray = load_normal_cooccurrence(settings.analysis.normal_cooccurrence)
        self._factory = pipeline_factory
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()
        processes = settings.analysis_process_count if pipeline_factory is None else 0
        self.workers = AnalysisWorkers(processes, settings.analysis, settings.mirrored) if processes else None

    def new_analyser(self, name: str) -> FrameAnalyser:
        """Session ``name``'s pipeline, in a worker process or in this one (call in the executor: it
        may wait for weights to load)."""
        if self.workers is not None:
            return self.workers.open(name)
        return LocalAnalyser(self.new_pipeline())

    def close(self) -> None:
        """Stop the analysis processes (after the sessions have closed)."""
        if self.workers is not None:
            self.workers.close()

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
