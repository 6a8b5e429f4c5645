"""Where a session's frame and keyframe work runs: in this process, or in an analysis worker process.

``AnalysisSession`` drives a ``FrameAnalyser``: ``ingest`` one frame (detect or track, keyframe
filter, align and split) and, for a frame that became a keyframe, ``estimate`` its AU values.
``LocalAnalyser`` runs a ``Pipeline`` in this process, and the keyframe it names is the ``Keyframe``
itself, images included. ``stream.server.analysis_workers.RemoteAnalyser`` runs the pipeline in a
worker process: the images never leave the worker, the server holds only a ``KeyframeStamp``.

The control calls (``rereference``, ``retrack``, ``restart_tracking``) take effect at the next frame
or keyframe, never at once, so a remote analyser sends them along with the next frame instead of
making the caller (possibly the event loop) wait for a busy worker.
"""

from __future__ import annotations

from typing import Protocol

from stream.pipeline import FrameResult, Pipeline
from stream.session.snapshot import EstimatorInfo
from stream.types import AUEstimate, Frame, Keyframe, KeyframeStamp

StageTimes = dict[str, dict[str, float]]  # stage -> n, mean_ms, p50_ms, p95_ms, total_ms, cpu_ms


class FrameAnalyser(Protocol):
    """One session's pipeline, wherever it runs. ``ingest`` is called from one thread at a time,
    ``estimate`` from one (possibly another) thread at a time, in keyframe order."""

    @property
    def estimator(self) -> EstimatorInfo:
        """The AU estimator the pipeline uses."""
        ...

    def ingest(self, frame: Frame) -> FrameResult[KeyframeStamp]:
        """One frame through detection, the keyframe filter and alignment."""
        ...

    def estimate(self, keyframe: KeyframeStamp) -> AUEstimate:
        """AU intensities of a keyframe ``ingest`` named (earlier ones not estimated are given up)."""
        ...

    def rereference(self) -> None:
        """The next frame that faces the camera becomes the neutral AU reference (docs/au_flow.md, step 1)."""
        ...

    def retrack(self) -> None:
        """Find the face afresh at the next frame (frames went unseen)."""
        ...

    def restart_tracking(self) -> None:
        """The frames changed size: tracking, keyframe crop and AU reference start afresh at the next frame."""
        ...

    def last_work(self) -> tuple[float, float] | None:
        """``time.perf_counter`` when the pipeline started and finished the latest frame (keyframe AU
        estimate included) where it runs elsewhere; None when it ran in the caller's thread."""
        ...

    def counts(self) -> dict[str, int]:
        """Frames and keyframes counted by the pipeline so far."""
        ...

    def stage_times(self) -> StageTimes:
        """Milliseconds per pipeline stage (``StageTimer.summary``)."""
        ...

    def close(self) -> None:
        """The session needs the pipeline no more (frees what it holds elsewhere)."""
        ...


class LocalAnalyser:
    """A ``Pipeline`` in this process: what ``ingest`` names is the ``Keyframe`` itself."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._estimator = EstimatorInfo.of(pipeline.estimator)

    @property
    def estimator(self) -> EstimatorInfo:
        return self._estimator

    def ingest(self, frame: Frame) -> FrameResult[KeyframeStamp]:
        return self.pipeline.ingest(frame)

    def estimate(self, keyframe: KeyframeStamp) -> AUEstimate:
        if not isinstance(keyframe, Keyframe):
            raise TypeError(
                f"an in-process analyser estimates the Keyframe its ingest returned, images included; "
                f"got a {type(keyframe).__name__} of frame {keyframe.frame_index}"
            )
        return self.pipeline.estimate(keyframe)

    def rereference(self) -> None:
        self.pipeline.rereference()

    def retrack(self) -> None:
        self.pipeline.retrack()

    def restart_tracking(self) -> None:
        self.pipeline.restart_tracking()

    def last_work(self) -> tuple[float, float] | None:
        return None

    def counts(self) -> dict[str, int]:
        return self.pipeline.counts.as_dict()

    def stage_times(self) -> StageTimes:
        return self.pipeline.timer.summary()

    def close(self) -> None:
        pass
