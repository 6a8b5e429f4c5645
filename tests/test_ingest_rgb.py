"""The RGB conversion of received frames (``ReceivedFrame.rgb``): the same pixels with a reused scaler."""

from __future__ import annotations

import os

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from test_server_support import load_face_frames

from stream.server.ingest import ReceivedFrame


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_a_reused_reformatter_gives_the_same_rgb_without_starting_threads(shared_data):
    large = load_face_frames(shared_data / "d9.mp4", every=7, limit=12, size=(640, 480))  # yuv420p, as decoded
    small = load_face_frames(shared_data / "d9.mp4", every=7, limit=6, size=(320, 240))  # the sender drops its size
    received = [ReceivedFrame(av.VideoFrame.from_ndarray(p, format="yuv420p"), 0.0, 0.0) for p in large + small]
    expected = [ReceivedFrame(av.VideoFrame.from_ndarray(p, format="yuv420p"), 0.0, 0.0).rgb() for p in large + small]
    reformatter = VideoReformatter()
    before = threads()
    got = [item.rgb(reformatter) for item in received]  # the frames stay alive, as a slot holds them
    assert threads() <= before  # converted in the calling thread: no scaler threads per frame
    assert [g.shape for g in got] == [(480, 640, 3)] * 12 + [(240, 320, 3)] * 6
    for g, e in zip(got, expected):
        assert g.dtype == np.uint8 and np.array_equal(g, e)
