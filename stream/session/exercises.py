"""The guided exercise protocol and the segmentation of a session's timeline into exercises. Pure.

The movements are the standard voluntary ones of the Sunnybrook and eFACE gradings (PAPER.md
section 5); synkinesis is graded *during* each movement, so statistics are kept per segment as well
as for the whole session. Times are seconds on the session clock (the clock the server stamps
received frames with), so a keyframe analysed late still lands in the segment it was filmed in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from stream.session.jsonsafe import JSONObject


@dataclass(frozen=True)
class Exercise:
    key: str
    title: str
    instruction: str
    duration_s: float

    def to_json(self) -> JSONObject:
        return {"key": self.key, "title": self.title, "instruction": self.instruction, "duration_s": self.duration_s}


PROTOCOL: tuple[Exercise, ...] = (
    Exercise("rest", "Rest", "Relax your face and look at the camera.", 8.0),
    Exercise("brow_raise", "Brow raise", "Raise both eyebrows as high as you can, as if surprised.", 6.0),
    Exercise("gentle_eye_closure", "Gentle eye closure", "Close your eyes gently, as if falling asleep.", 6.0),
    Exercise("tight_eye_closure", "Tight eye closure", "Squeeze your eyes shut as tightly as you can.", 6.0),
    Exercise("smile", "Smile", "Give a big smile with your mouth open.", 6.0),
    Exercise("snarl", "Snarl / show teeth", "Wrinkle your nose and show your upper teeth.", 6.0),
    Exercise("lip_pucker", "Lip pucker", "Pucker your lips as if to whistle or kiss.", 6.0),
)
EXERCISES: dict[str, Exercise] = {e.key: e for e in PROTOCOL}


class ExerciseError(ValueError):
    """An exercise event that does not fit the protocol or the session's timeline."""


@dataclass(frozen=True)
class Segment:
    segment_id: int
    exercise: str
    start_s: float
    end_s: float | None = None  # None: still running

    def contains(self, time_s: float) -> bool:
        return self.start_s <= time_s and (self.end_s is None or time_s < self.end_s)

    @property
    def scope(self) -> str:
        """The name of this segment's statistics scope (the session's is ``"session"``)."""
        return f"segment:{self.segment_id}"

    def to_json(self) -> JSONObject:
        return {"segment_id": self.segment_id, "exercise": self.exercise, "start_s": self.start_s, "end_s": self.end_s}


class Timeline:
    """Exercise segments of one session: at most one open at a time, never overlapping.

    ``start`` closes a running segment first (moving on to the next exercise is one tap);
    ``segment_at`` answers which segment a frame time falls in.
    """

    def __init__(self, segments: list[Segment] | None = None) -> None:
        self._segments: list[Segment] = sorted(segments or [], key=lambda s: s.start_s)
        self._starts = [s.start_s for s in self._segments]

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    @property
    def current(self) -> Segment | None:
        if self._segments and self._segments[-1].end_s is None:
            return self._segments[-1]
        return None

    def start(self, exercise: str, time_s: float) -> tuple[Segment | None, Segment]:
        """Begin ``exercise`` at ``time_s``; returns (the segment it closed or None, the new segment)."""
        if exercise not in EXERCISES:
            raise ExerciseError(f"unknown exercise {exercise!r}; the protocol has {', '.join(EXERCISES)}")
        if self._segments and time_s < (self._segments[-1].end_s or self._segments[-1].start_s):
            raise ExerciseError(f"exercise start at {time_s:.3f} s is before the previous segment")
        closed = self.stop(time_s)
        segment = Segment(len(self._segments), exercise, time_s)
        self._segments.append(segment)
        self._starts.append(time_s)
        return closed, segment

    def stop(self, time_s: float) -> Segment | None:
        """End the running segment at ``time_s``; None when nothing was running."""
        current = self.current
        if current is None:
            return None
        closed = replace(current, end_s=max(time_s, current.start_s))
        self._segments[-1] = closed
        return closed

    def segment_at(self, time_s: float) -> Segment | None:
        i = bisect.bisect_right(self._starts, time_s) - 1
        if i >= 0 and self._segments[i].contains(time_s):
            return self._segments[i]
        return None
