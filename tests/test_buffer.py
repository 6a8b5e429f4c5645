from __future__ import annotations

import numpy as np
import pytest

from stream.au.base import KeyframeCode
from stream.buffer import KeyframeBuffer


def _code(i: int, nbytes: int = 100) -> KeyframeCode:
    return KeyframeCode(frame_index=i, time_s=i / 30, own=np.zeros((2, 12)), payload=None, nbytes=nbytes)


def test_count_bound_evicts_oldest_first():
    buf = KeyframeBuffer(max_keyframes=3, max_bytes=10**9)
    for i in range(5):
        buf.add(_code(i))
    assert [c.frame_index for c in buf] == [2, 3, 4]
    assert buf.evicted == 2


def test_byte_bound_evicts_but_keeps_the_newest():
    buf = KeyframeBuffer(max_keyframes=100, max_bytes=250)
    for i in range(4):
        buf.add(_code(i, nbytes=100))
    assert [c.frame_index for c in buf] == [2, 3] and buf.nbytes == 200
    buf.add(_code(9, nbytes=1000))  # alone larger than the bound: still kept
    assert [c.frame_index for c in buf] == [9]


def test_helpers_are_distinct_exclude_the_current_frame_and_are_seeded():
    a, b = KeyframeBuffer(seed=7), KeyframeBuffer(seed=7)
    for i in range(20):
        a.add(_code(i))
        b.add(_code(i))
    ha = [c.frame_index for c in a.helpers(4, exclude_frame=5)]
    assert len(set(ha)) == 4 and 5 not in ha
    assert ha == [c.frame_index for c in b.helpers(4, exclude_frame=5)]
    assert len(a.helpers(50)) == 20
    assert a.helpers(0) == []
    with pytest.raises(ValueError):
        a.helpers(-1)


def test_empty_buffer_gives_no_helpers():
    assert KeyframeBuffer().helpers(2) == []
