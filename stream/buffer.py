"""Rolling buffer of encoded keyframes from which DEM helpers are drawn.

Bounded by count and by bytes; when either bound is exceeded the oldest entries leave first
(first in, first out), so helpers stay close in time to the current keyframe (same lighting,
same head pose), which is what the paper's same-video helper draw relies on.

Helper policy: ``helpers(m)`` draws m distinct entries uniformly at random (seedable) from the
buffer, never the current keyframe itself; fewer when the buffer holds fewer than m.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from stream.au.base import KeyframeCode


class KeyframeBuffer:
    def __init__(self, max_keyframes: int = 256, max_bytes: int = 256 * 1024 * 1024, seed: int | None = 0) -> None:
        if max_keyframes < 1:
            raise ValueError(f"buffer must hold at least 1 keyframe, got max_keyframes={max_keyframes}")
        if max_bytes < 1:
            raise ValueError(f"buffer byte bound must be positive, got max_bytes={max_bytes}")
        self.max_keyframes = max_keyframes
        self.max_bytes = max_bytes
        self._items: deque[KeyframeCode] = deque()
        self._bytes = 0
        self._rng = np.random.default_rng(seed)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[KeyframeCode]:
        return iter(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def add(self, code: KeyframeCode) -> None:
        self._items.append(code)
        self._bytes += code.nbytes
        # Keep at least the newest entry even if it alone exceeds the byte bound.
        while len(self._items) > 1 and (len(self._items) > self.max_keyframes or self._bytes > self.max_bytes):
            old = self._items.popleft()
            self._bytes -= old.nbytes
            self.evicted += 1

    def helpers(self, m: int, exclude_frame: int | None = None) -> list[KeyframeCode]:
        """m distinct random entries (fewer if the buffer is smaller), excluding ``exclude_frame``."""
        if m < 0:
            raise ValueError(f"number of helpers must be >= 0, got {m}")
        pool = [c for c in self._items if c.frame_index != exclude_frame]
        if m == 0 or not pool:
            return []
        k = min(m, len(pool))
        picks = self._rng.choice(len(pool), size=k, replace=False)
        return [pool[int(i)] for i in sorted(picks)]

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
