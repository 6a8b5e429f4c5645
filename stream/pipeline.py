"""One pipeline object shared by offline analysis and the live server; only the frame source differs.

``ingest`` (per frame: detect, keyframe filter, align + split) is cheap enough for every frame;
``analyze`` (per keyframe: AU estimation over buffered helpers, incremental statistics) is where the
models run. The live server calls them from different workers; ``process`` chains them for files.
Neither touches files, the network or asyncio.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np

from stream.au.base import AUEstimator, build_estimator
from stream.buffer import KeyframeBuffer
from stream.config import AnalysisConfig
from stream.face.align import align_face, half_face_mouth_corners, split_halves, yaw_index
from stream.face.detect import FaceDetector, build_detector
from stream.face.track import TrackingDetector
from stream.keyframes import KeyframeFilter
from stream.reference import ReferenceWait
from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.statistics import SymptomAccumulator, SymptomState
from stream.types import AUEstimate, AUSeries, Counts, Frame, Keyframe, KeyframeStamp

# What a frame result names its keyframe by: the ``Keyframe`` itself in this process; a
# ``KeyframeStamp`` where the images stay in an analysis worker process (``stream/session/analyser.py``).
K = TypeVar("K", bound=KeyframeStamp, covariant=True)


@dataclass(frozen=True)
class FrameResult(Generic[K]):
    frame_index: int
    time_s: float
    n_faces: int
    keyframe: K | None  # set when this frame passed the keyframe filter
    difference: float | None  # keyframe-filter difference (grey levels); None without a face


@dataclass(frozen=True)
class KeyframeResult:
    estimate: AUEstimate


class StageTimer:
    """Wall-clock milliseconds per named stage (for the benchmark and stream health), and the CPU
    milliseconds of the calling thread in it (``cpu_ms``: work done, whatever else shares the cores).

    Counts and totals cover every call; percentiles come from the most recent ``window`` calls, so
    memory stays bounded in a live session that runs for hours.
    """

    def __init__(self, window: int = 4096) -> None:
        self.ms: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._n: dict[str, int] = defaultdict(int)
        self._total: dict[str, float] = defaultdict(float)
        self._cpu: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            ms = (time.perf_counter() - t0) * 1000.0
            self.ms[name].append(ms)
            self._n[name] += 1
            self._total[name] += ms
            self._cpu[name] += (time.thread_time() - c0) * 1000.0

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in list(self.ms.items()):
            a = np.asarray(values)
            if a.size == 0:
                continue
            n, total = self._n[name], self._total[name]
            out[name] = {
                "n": n,
                "mean_ms": total / n,
                "p50_ms": float(np.median(a)),
                "p95_ms": float(np.percentile(a, 95)),
                "total_ms": total,
                "cpu_ms": self._cpu[name],
            }
        return out


class Pipeline:
    def __init__(
        self,
        config: AnalysisConfig | None = None,
        detector: FaceDetector | None = None,
        estimator: AUEstimator | None = None,
        mirrored: bool = False,
        keep_series: bool = True,
        normal: np.ndarray | None = None,
    ) -> None:
        """``keep_series=False`` keeps no per-keyframe history in memory (a live session stores it);
        ``normal``: the normal co-occurrence matrix when the caller has loaded it already."""
        self.config = (config or AnalysisConfig()).validate()
        cfg = self.config
        self.detector = detector or build_detector(cfg.detector, weights=cfg.weights, device=cfg.device)
        self.tracker = TrackingDetector(self.detector, detect_every=cfg.detect_every)
        self.estimator = estimator or build_estimator(cfg.estimator, checkpoint=cfg.checkpoint, device=cfg.device)
        self.estimator.turn_limit_deg = cfg.max_turn_deg  # a keyframe beyond it is not measured, only counted
        self.mirrored = mirrored
        self.keep_series = keep_series
        self.normal = load_normal_cooccurrence(cfg.normal_cooccurrence) if normal is None else normal
        self.keyframe_filter = KeyframeFilter(cfg.keyframe_threshold)
        self.buffer = KeyframeBuffer(cfg.buffer_max_keyframes, cfg.buffer_max_bytes, seed=cfg.seed)
        self.statistics = SymptomAccumulator(active_threshold=cfg.active_threshold)
        self.counts = Counts()
        self.estimates: list[AUEstimate] = []
        self.timer = StageTimer()
        self._last_face_s: float | None = None
        self._rereference = False
        # the next reference must face the camera (stream/reference.py)
        self._awaiting_reference = True
        self._reference_wait = ReferenceWait(cfg.reference_max_yaw, cfg.reference_wait_s)

    # -- per frame ---------------------------------------------------------------------------
    def ingest(self, frame: Frame) -> FrameResult[Keyframe]:
        self.counts.frames += 1
        with self.timer.stage("detect"):
            detection = self.tracker.detect(frame.image)
        if detection.n_faces > 1:
            self.counts.frames_with_several_faces += 1
        face = detection.face
        if face is None:
            self.counts.frames_without_face += 1
            return FrameResult(frame.index, frame.time_s, 0, None, None)
        if self._last_face_s is not None and frame.time_s - self._last_face_s >= self.config.rereference_after_s:
            self.rereference()  # the first keyframe facing the camera is the new reference
        self._last_face_s = frame.time_s
        yaw = yaw_index(face.landmarks)
        if abs(yaw) > self.config.max_yaw:
            self._count("frames_pose_gated")
            return FrameResult(frame.index, frame.time_s, detection.n_faces, None, None)
        if self._awaiting_reference and not self._reference_wait.may_take(frame.time_s, yaw):
            # not offered to the keyframe filter either, so the first frame that may be the
            # reference is a keyframe (the filter starts afresh) even on a face that hardly moves
            self._count("frames_before_reference")
            return FrameResult(frame.index, frame.time_s, detection.n_faces, None, None)
        with self.timer.stage("keyframe_filter"):
            try:
                # the tracker already made the grey frame the 48x48 crop is sampled from
                decision = self.keyframe_filter.offer(self.tracker.grey, face)
            except ValueError:  # degenerate landmarks: treat as no usable face
                self.counts.frames_without_face += 1
                return FrameResult(frame.index, frame.time_s, detection.n_faces, None, None)
        if not decision.keep:
            return FrameResult(frame.index, frame.time_s, detection.n_faces, None, decision.difference)
        if self._awaiting_reference:
            self._take_reference(yaw)
        with self.timer.stage("align"):
            aligned = align_face(frame.image, face)
            halves = split_halves(aligned, mirrored=self.mirrored)
            corners = half_face_mouth_corners(face, mirrored=self.mirrored)
        self.counts.keyframes += 1
        keyframe = Keyframe(
            frame.index, frame.time_s, halves, aligned, new_reference=self._rereference, mouth_corners=corners
        )
        if self._rereference:
            self._count("rereferenced")
            self._rereference = False
        return FrameResult(frame.index, frame.time_s, detection.n_faces, keyframe, decision.difference)

    def _take_reference(self, yaw: float) -> None:
        if abs(yaw) > self.config.reference_max_yaw:  # taken as it is after the wait
            self._count("reference_not_frontal")
        self._awaiting_reference = False
        self._reference_wait.restart()

    # -- per keyframe ------------------------------------------------------------------------
    def rereference(self) -> None:
        """Take the next keyframe that faces the camera as the new neutral reference (a live session's
        rest exercise begins; the face came back), waiting at most ``reference_wait_s``."""
        self._rereference = True
        self._awaiting_reference = True
        self._reference_wait.restart()
        self.keyframe_filter.reset()

    def retrack(self) -> None:
        """Find the face afresh at the next frame (frames went unseen: the tracked points are stale).

        The AU reference stays (same face, same camera), so the series goes on where it paused.
        """
        self.tracker.reset()

    def restart_tracking(self) -> None:
        """The frames changed size: tracker, keyframe crop and AU reference start afresh.

        The next keyframe is the new reference; the estimator and helper buffer are reset when
        ``estimate`` gets to it, not here, so this is safe to call while another thread estimates.
        """
        self.tracker.reset()
        self.rereference()

    def _count(self, key: str) -> None:
        self.counts.extra[key] = self.counts.extra.get(key, 0) + 1

    def estimate(self, keyframe: Keyframe) -> AUEstimate:
        """AU intensities of one keyframe, from its helpers; the statistics are not updated.

        A live session keeps its own statistics (per exercise as well), so it calls this;
        ``analyze`` adds the keyframe to this pipeline's statistics as well. A keyframe whose head
        turned more than ``max_turn_deg`` from the reference's pose comes back ``pose_gated``: it is
        no helper, and the callers leave it out of the series and the statistics.
        """
        if keyframe.new_reference:  # here, not in ingest: the live server runs the two in different threads
            self.estimator.reset()
            self.buffer.clear()
        with self.timer.stage("au_encode"):
            code = self.estimator.encode(keyframe)
        with self.timer.stage("au_dem"):
            helpers = self.buffer.helpers(self.config.helpers, exclude_frame=code.frame_index)
            estimate = self.estimator.estimate(code, helpers)
        if estimate.turn_deg is not None and estimate.turn_deg > self.config.max_turn_deg:
            # not measured: its movement would be mostly the carry into the reference's pose
            self._count("keyframes_pose_gated")
            return replace(estimate, pose_gated=True)
        self.buffer.add(code)
        return estimate

    def analyze(self, keyframe: Keyframe) -> KeyframeResult:
        estimate = self.estimate(keyframe)
        if estimate.pose_gated:
            return KeyframeResult(estimate)
        with self.timer.stage("statistics"):
            self.statistics.update(estimate.left, estimate.right)
        if self.keep_series:
            self.estimates.append(estimate)
        return KeyframeResult(estimate)

    def process(self, frame: Frame) -> tuple[FrameResult[Keyframe], KeyframeResult | None]:
        result = self.ingest(frame)
        if result.keyframe is None:
            return result, None
        return result, self.analyze(result.keyframe)

    # -- results -----------------------------------------------------------------------------
    def symptoms(self) -> SymptomState:
        return self.statistics.snapshot(self.normal, **self.config.symptom_thresholds())

    def series(self) -> AUSeries:
        return AUSeries.from_estimates(self.estimates)
