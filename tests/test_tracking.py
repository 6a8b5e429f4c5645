"""Detect-then-track on real frames, and decoding ahead in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from stream.decode import VideoFile, prefetched
from stream.face.detect import FaceDetector
from stream.face.track import TrackingDetector
from stream.types import Face


class CountingDetector(FaceDetector):
    """The real MTCNN, counting its calls."""

    def __init__(self) -> None:
        from stream.face.mtcnn import MTCNNDetector

        self.inner = MTCNNDetector()
        self.calls = 0

    def detect_all(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        return self.inner.detect_all(image)


@pytest.fixture(scope="module")
def counting():
    return CountingDetector()


def test_tracked_points_stay_close_to_fresh_detections(shared_data, counting):
    with VideoFile(shared_data / "single_face.mp4") as video:
        frames = [f.image for f in video.frames()]
    tracker = TrackingDetector(counting, detect_every=10)
    counting.calls = 0
    tracked = [tracker.detect(image) for image in frames]
    assert counting.calls < len(frames) / 3  # most frames are tracked, not detected
    errors = []
    for k in range(0, len(frames), 7):
        truth = counting.inner.detect(frames[k]).face
        errors.append(np.abs(tracked[k].face.landmarks[:3] - truth.landmarks[:3]).max())
    assert np.median(errors) < 4.0 and max(errors) < 10.0  # pixels, eyes and nose on a 640x360 frame


def test_losing_the_face_triggers_a_detection_on_the_same_frame(shared_data, counting):
    with VideoFile(shared_data / "single_face.mp4") as video:
        image = next(video.frames()).image
    tracker = TrackingDetector(counting, detect_every=100)
    assert tracker.detect(image).face is not None
    blank = np.full_like(image, 127)  # the face is gone: tracking fails, the detector confirms
    counting.calls = 0
    result = tracker.detect(blank)
    assert result.face is None and result.n_faces == 0 and counting.calls == 1


def test_prefetch_keeps_order_and_passes_decoder_errors_on():
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise RuntimeError("decoder broke")

    got = []
    with pytest.raises(RuntimeError, match="decoder broke"):
        for item in prefetched(broken()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early():
    import threading

    before = threading.active_count()
    gen = prefetched(iter(range(10_000)), depth=2)
    assert next(gen) == 0
    gen.close()
    assert threading.active_count() == before


def test_prefetch_stops_its_thread_when_the_consumer_stops_with_the_end_still_queued():
    """The decoder reached the end while the queue was full: the end marker waits for room that a consumer
    who stopped never makes, and the thread must stop all the same (not block for ever)."""
    import threading

    exhausted = threading.Event()

    def three() -> Iterator[int]:
        yield from range(3)
        exhausted.set()  # the worker asked for a fourth item: next it queues the end

    before = threading.active_count()
    gen = prefetched(three(), depth=2)
    assert next(gen) == 0  # 1 and 2 fill the queue
    assert exhausted.wait(60)
    gen.close()
    assert threading.active_count() == before


def test_a_change_of_frame_size_detects_afresh_instead_of_failing(shared_data, counting):
    """WebRTC senders drop from 640x480 to 320x240 under pressure; LK cannot track across sizes."""
    import cv2

    with VideoFile(shared_data / "single_face.mp4") as video:
        frames = [f.image for _, f in zip(range(3), video.frames())]
    tracker = TrackingDetector(counting, detect_every=100)
    assert tracker.detect(frames[0]).face is not None
    assert tracker.detect(frames[1]).face is not None and tracker.last_tracked
    h, w = frames[2].shape[:2]
    small = cv2.resize(frames[2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    counting.calls = 0
    result = tracker.detect(small)
    assert counting.calls == 1 and not tracker.last_tracked  # a detection on the new size, no assert
    assert result.face is not None and result.face.landmarks[:, 0].max() <= w // 2
    assert tracker.detect(small).face is not None and tracker.last_tracked  # tracking resumes at the new size
