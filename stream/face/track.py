"""Detect every k-th frame, track the 5 points in between (pyramidal Lucas-Kanade).

A CNN detector on every frame costs more than real time on a 2-core CPU; the 5 points move little
between consecutive frames, so LK tracking carries them between detections at under a millisecond.
A tracking failure (point lost, forward-backward error too large, points collapsing) triggers a
detection on that same frame, so a face leaving the picture is noticed at once. So does a change of
frame size: WebRTC senders lower the resolution under bandwidth or CPU pressure, and LK cannot
compare frames of two sizes (OpenCV asserts).
"""

from __future__ import annotations

import cv2
import numpy as np

from stream.face.detect import FaceDetector
from stream.types import Detection, Face

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


class TrackingDetector:
    """Wraps a ``FaceDetector``: full detection every ``detect_every`` frames, LK tracking between."""

    def __init__(self, detector: FaceDetector, detect_every: int = 5, max_fb_error_px: float = 2.0) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detector = detector
        self.detect_every = detect_every
        self.max_fb_error_px = max_fb_error_px
        self._prev_grey: np.ndarray | None = None
        self._face: Face | None = None
        self._n_faces = 0
        self._since_detection = 0
        self.detections = 0
        self.tracked = 0
        self.last_tracked = False  # True when the last result came from tracking, not the detector

    @property
    def grey(self) -> np.ndarray:
        """The grey version of the frame last passed to ``detect`` (reused by the keyframe filter)."""
        if self._prev_grey is None:
            raise RuntimeError("no frame yet: call detect() before reading grey")
        return self._prev_grey

    def reset(self) -> None:
        self._prev_grey, self._face, self._n_faces, self._since_detection = None, None, 0, 0

    def detect(self, image: np.ndarray, force: bool = False) -> Detection:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self._prev_grey is not None and self._prev_grey.shape != grey.shape:
            self.reset()  # points of the old size mean nothing in the new one: detect afresh
        result = None
        if (
            not force
            and self._face is not None
            and self._prev_grey is not None
            and self._since_detection < self.detect_every - 1
        ):
            result = self._track(grey)
        if result is None:
            result = self.detector.detect(image)
            self.detections += 1
            self._since_detection = 0
            self._n_faces = result.n_faces
            self.last_tracked = False
        else:
            self.last_tracked = True
            self.tracked += 1
            self._since_detection += 1
        self._face = result.face
        self._prev_grey = grey
        return result

    def _track(self, grey: np.ndarray) -> Detection | None:
        assert self._face is not None and self._prev_grey is not None
        p0 = self._face.landmarks.astype(np.float32).reshape(-1, 1, 2)
        # nextPts None: allocate (opencv's stubs omit it)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._prev_grey, grey, p0, None, **_LK)  # type: ignore[call-overload]
        if p1 is None or not st1.all():
            return None
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev_grey, p1, None, **_LK)  # type: ignore[call-overload]
        if back is None or not st2.all():
            return None
        fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        if float(fb.max()) > self.max_fb_error_px:
            return None
        pts = p1.reshape(-1, 2).astype(float)
        iod_before = np.linalg.norm(self._face.landmarks[1] - self._face.landmarks[0])
        iod_after = np.linalg.norm(pts[1] - pts[0])
        if iod_after < 0.7 * iod_before or iod_after > 1.4 * iod_before:
            return None
        shift = np.median(pts - self._face.landmarks, axis=0)
        box = self._face.box + np.array([shift[0], shift[1], shift[0], shift[1]])
        return Detection(face=Face(box=box, landmarks=pts, score=self._face.score), n_faces=self._n_faces)
