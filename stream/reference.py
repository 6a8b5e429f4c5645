"""Which frame may become the session's neutral reference (docs/au_flow.md, step 1).

Every keyframe is read against the reference, and a turned reference splits the half-faces unevenly
for the whole session, so the reference waits for a frame that faces the camera: its yaw index at
most ``max_yaw``. After ``wait_s`` without one (counted from the first frame offered), the next frame
is taken as it is. The pipeline and the validation's construction both ask this one rule, so a
constructed palsy holds the very frame the product reads against. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReferenceWait:
    max_yaw: float  # |yaw index| of a frame that faces the camera (inter-ocular distances)
    wait_s: float  # how long to wait for one before the next frame is taken as it is
    _since: float | None = field(default=None, init=False)

    def may_take(self, time_s: float, yaw: float) -> bool:
        """May the frame at ``time_s`` with this yaw index be the reference? Offer only frames the
        caller measures at all (within its pose gate): the first one offered starts the wait."""
        if self._since is None:
            self._since = time_s
        return abs(yaw) <= self.max_yaw or time_s - self._since >= self.wait_s

    def restart(self) -> None:
        """A reference was taken, or a new one is wanted: the next frame offered starts the wait."""
        self._since = None
