"""What the server and an analysis worker process say to each other: one frozen dataclass per message.

Each worker answers one request at a time, in order, over its own pipe; every request gets exactly
one reply (``Failed`` when the work raised). A frame's pixels do not travel in ``AnalyseFrame``:
they are in the session's shared-memory slot (``frame_slots.py``), the message names the slot.
The keyframe's images stay in the worker too: it estimates the keyframe's AU values right after
the ingest that found it and replies with the estimate and a ``KeyframeStamp``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from stream.pipeline import FrameResult
from stream.session.analyser import StageTimes
from stream.session.snapshot import EstimatorInfo
from stream.types import AUEstimate, KeyframeStamp


@dataclass(frozen=True)
class Controls:
    """Control calls made since the last frame; the worker applies them before ingesting the next one."""

    rereference: bool = False
    retrack: bool = False
    restart_tracking: bool = False

    def __or__(self, other: Controls) -> Controls:
        return Controls(
            self.rereference or other.rereference,
            self.retrack or other.retrack,
            self.restart_tracking or other.restart_tracking,
        )


# -- requests ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenPipeline:
    """Build a pipeline for ``pipeline`` (the worker's detector, a new estimator and tracker)."""

    pipeline: str  # unique per pipeline the server opens: "<session id>/<n>"


@dataclass(frozen=True)
class AnalyseFrame:
    """Ingest the frame in shared-memory slot ``slot``; estimate it if it becomes a keyframe."""

    pipeline: str
    slot: str  # shared-memory name
    shape: tuple[int, int, int]  # (H, W, 3) uint8 RGB at the start of the slot
    frame_index: int
    time_s: float
    controls: Controls


@dataclass(frozen=True)
class GetStageTimes:
    pipeline: str


@dataclass(frozen=True)
class ClosePipeline:
    pipeline: str


@dataclass(frozen=True)
class Stop:
    """Exit after answering nothing more (the server is shutting down)."""


Request = OpenPipeline | AnalyseFrame | GetStageTimes | ClosePipeline | Stop


# -- replies ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    """Sent once, unasked, when the worker has loaded its detector."""

    pid: int


@dataclass(frozen=True)
class Opened:
    estimator: EstimatorInfo


@dataclass(frozen=True)
class FrameAnalysed:
    result: FrameResult[KeyframeStamp]
    estimate: AUEstimate | None  # the keyframe's AU values when the frame became one
    counts: dict[str, int]  # the pipeline's frame counts after this frame
    # time.perf_counter in the worker when it took the request and when it had the reply ready (on
    # Linux the same monotonic clock as the server's stamps, whatever the process)
    started: float
    finished: float


@dataclass(frozen=True)
class StageTimesAnswer:
    times: StageTimes


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Failed:
    """The request raised in the worker; the worker goes on serving."""

    error: str  # "TypeName: message"
    details: str  # the worker's traceback, for the server log

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        return cls(f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


Reply = Ready | Opened | FrameAnalysed | StageTimesAnswer | Done | Failed
