"""The two loops of one patient connection, and the one way they end.

* the *frame loop* takes the newest received frame whenever the model threads are free and runs
  ``AnalysisSession.ingest`` (detect or track, keyframe filter, align) in the shared executor;
  frames overwritten before it looked are stale drops;
* the *analysis loop* takes keyframes from the bounded ``KeyframeQueue`` and, in the same executor,
  runs ``AnalysisSession.estimate`` and the ``Recorder`` (SQLite row, then statistics of the
  keyframe's scopes); then it has the publisher show the keyframe and the findings recomputed when due.

Whatever stops them (the patient hangs up or vanishes, no frame for ``stall_end_s``, a bug) goes
through ``_end``: the failure is shown on the dashboards (``alert``) and logged once, the peer is
closed, the open exercise segment closes at the last frame received, and the final statistics,
counts and status are stored as far as the disk allows. A failed SQLite write (disk full) pauses the
analysis instead: frames are dropped (counted) while the write that failed is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from av.video.reformatter import VideoReformatter

from stream.errors import AnalysisRestarted
from stream.pipeline import FrameResult
from stream.server.health import Alert
from stream.server.ingest import KeyframeQueue, LatestFrame, PatientPeer, ReceivedFrame
from stream.server.latency import KeyframeTrace
from stream.server.recorder import AnalysedKeyframe
from stream.server.store import StorageError
from stream.session.exercises import Segment
from stream.types import KeyframeStamp

if TYPE_CHECKING:  # the session creates its loops; the loops only call it back
    from stream.server.live import LiveSession

log = logging.getLogger(__name__)

ENDING_TIMEOUT_S = 10.0  # hang-up and shutdown wait at most this long for the loops to finish
# A failed write is retried after 0.5 s, then 1 s, then every 2 s: space freed on the disk is seen
# within 2 s, and a disk that stays full costs one small failed write every 2 s per session.
STORAGE_RETRY_FIRST_S = 0.5
STORAGE_RETRY_MAX_S = 2.0

QueuedKeyframe = tuple[KeyframeStamp, ReceivedFrame, "Segment | None", KeyframeTrace]


class StreamLoops:
    """The frame and analysis loops of one connection, fed by its latest-frame ``slot``."""

    def __init__(self, session: LiveSession, peer: PatientPeer, slot: LatestFrame[ReceivedFrame]) -> None:
        self.session = session
        self.peer = peer
        self.slot = slot
        self.keyframes: KeyframeQueue[QueuedKeyframe] = KeyframeQueue(session.settings.keyframe_queue)
        self._received_before = session.health.frames_received
        self._dropped_before = session.health.keyframes_dropped
        self._rgb = VideoReformatter()  # the frame loop's RGB conversions, one frame at a time

    def start(self) -> None:
        frames = self.session.spawn(self._frame_loop())
        self.session.spawn(self._analysis_loop(frames))

    def count_received(self) -> None:
        """Frames keep arriving while the models are busy: count them now."""
        self.session.health.frames_received = self._received_before + self.slot.seq

    async def _next_frame(self, seen: int) -> tuple[int, ReceivedFrame | None]:
        """The next newer frame; shows a stall after ``stall_after_s`` and gives up at ``stall_end_s``."""
        session, settings = self.session, self.session.settings
        try:
            return await asyncio.wait_for(self.slot.newer_than(seen), settings.stall_after_s)
        except TimeoutError:
            pass
        session.set_alert("stalled", f"patient stalled: no frame for {settings.stall_after_s:g} s")
        try:
            found = await asyncio.wait_for(self.slot.newer_than(seen), settings.stall_end_s - settings.stall_after_s)
        except TimeoutError:
            session.set_alert("stalled", f"patient stalled: no frame for {settings.stall_end_s:g} s; session ended")
            log.info("session %s: no frame for %g s, ending", session.id, settings.stall_end_s)
            return seen, None
        if session.alert is not None and session.alert.code == "stalled":
            session.alert = session.outage  # the database may still be unwritable
        return found

    async def _frame_loop(self) -> None:
        session, loop = self.session, asyncio.get_running_loop()
        seen = 0
        try:
            while True:
                seen, item = await self._next_frame(seen)
                self.count_received()
                if item is None:
                    break
                session.last_frame_s = item.received_at - session.created_at
                if session.outage is not None:  # nothing analysed now could be stored: drop, count, wait
                    session.health.frames_dropped_storage += 1
                    session.analysis.frames_skipped()
                    continue
                trace = KeyframeTrace(item.received_mono)
                trace.picked = time.perf_counter()
                try:
                    result = await loop.run_in_executor(session.models.ingest_executor, self._ingest, item, trace)
                except AnalysisRestarted as exc:  # its worker process died; the next frame goes to a new one
                    log.warning("session %s: %s", session.id, exc)
                    session.set_alert("analysis_restarted", str(exc)[:300])
                    continue
                session.health.frames_analysed += 1
                if result.keyframe is not None:
                    segment = session.analysis.timeline.segment_at(result.keyframe.time_s)
                    trace.queued = time.perf_counter()
                    # No publish here: the snapshot would not have the keyframe yet and would use
                    # up the coalescing interval just before its analysis ends.
                    self.keyframes.put((result.keyframe, item, segment, trace))
        except Exception as exc:
            log.exception("session %s: frame loop failed", session.id)
            session.set_alert("analysis_stopped", f"analysis stopped: {type(exc).__name__}: {exc}"[:300])
        finally:
            self.keyframes.close()

    def _ingest(self, item: ReceivedFrame, trace: KeyframeTrace) -> FrameResult[KeyframeStamp]:
        """Model thread: one frame through detection and the keyframe filter."""
        trace.ingest_start = time.perf_counter()
        result = self.session.analysis.ingest(item.rgb(self._rgb), item.received_at - self.session.created_at)
        trace.ingest_end = time.perf_counter()
        analyser = self.session.analysis.analyser
        work = analyser.last_work() if analyser is not None else None
        if work is not None:  # in a worker process: waiting for it is queueing, not ingest
            start, end = work  # the worker's clock is this one (CLOCK_MONOTONIC); clamped all the same
            trace.ingest_start = min(max(start, trace.ingest_start), trace.ingest_end)
            trace.ingest_end = max(min(end, trace.ingest_end), trace.ingest_start)
        return result

    async def _analysis_loop(self, frames: asyncio.Task[None]) -> None:
        session, loop = self.session, asyncio.get_running_loop()
        try:
            while True:
                entry = await self.keyframes.get()
                session.health.keyframes_dropped = self._dropped_before + self.keyframes.dropped
                if entry is None:
                    break
                entry[3].dequeued = time.perf_counter()
                try:
                    await loop.run_in_executor(session.models.analysis_executor, self._analyze, *entry)
                except StorageError as exc:
                    if not await self._wait_for_storage(exc, frames):
                        break  # the stream ended while the disk was still full
                session.publisher.notify()
                session.schedule_findings()
        except Exception as exc:
            log.exception("session %s: analysis loop failed", session.id)
            session.set_alert("analysis_stopped", f"analysis stopped: {type(exc).__name__}: {exc}"[:300])
        finally:
            await self._end(frames)

    def _analyze(
        self, keyframe: KeyframeStamp, item: ReceivedFrame, segment: Segment | None, trace: KeyframeTrace
    ) -> None:
        """Model thread: AU values of a keyframe, then stored, shown and counted (``Recorder``)."""
        trace.analyze_start = time.perf_counter()
        estimate = self.session.analysis.estimate(keyframe)
        trace.estimated = time.perf_counter()
        self.session.recorder.keyframe(AnalysedKeyframe(estimate, item.received_at, segment, trace))

    async def _wait_for_storage(self, exc: StorageError, frames: asyncio.Task[None]) -> bool:
        """A write failed: pause until the write that failed succeeds again; False if the stream ends first.

        The patient stays connected and the status live; the frame loop drops frames meanwhile
        (``frames_dropped_storage``), so nothing is analysed that could not be stored.
        """
        session, loop = self.session, asyncio.get_running_loop()
        log.error("session %s: analysis paused: %s; retrying every %g s", session.id, exc, STORAGE_RETRY_MAX_S)
        session.outage = Alert(
            "storage",
            f"analysis stopped: the database cannot be written ({exc.__cause__ or exc}); "
            "it resumes by itself once the disk has space again",
        )
        session.alert = session.outage
        session.publisher.notify()
        dropped_before = session.health.frames_dropped_storage
        delay = STORAGE_RETRY_FIRST_S
        while True:
            ended, _ = await asyncio.wait({frames}, timeout=delay)
            try:
                await loop.run_in_executor(session.models.analysis_executor, session.recorder.retry)
            except StorageError:
                if ended:
                    return False
                delay = min(2 * delay, STORAGE_RETRY_MAX_S)
                continue
            break
        if session.alert is session.outage:
            session.alert = None
        session.outage = None
        log.info(
            "session %s: the database can be written again; analysis resumes (%d frames dropped meanwhile)",
            session.id,
            session.health.frames_dropped_storage - dropped_before,
        )
        return True

    async def _end(self, frames: asyncio.Task[None]) -> None:
        """The one way a stream ends: loops stopped, peer closed, segment closed, record stored."""
        session, loop = self.session, asyncio.get_running_loop()
        try:
            frames.cancel()
            await asyncio.gather(frames, return_exceptions=True)
            # A connection that never delivered a frame ended nothing: the patient may try again.
            streamed = self.slot.seq > 0
            await self.peer.close()
            session.close_open_segment()
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(session.models.executor, session.store_quietly, session.finish),
                    ENDING_TIMEOUT_S,
                )
            except TimeoutError:
                log.warning("session %s: final statistics not stored within %g s", session.id, ENDING_TIMEOUT_S)
            except Exception:
                log.exception("session %s: final statistics failed", session.id)
            # Stored first, then shown: a dashboard that reads "ended" finds the final record stored.
            status = "ended" if streamed else "waiting"
            session.store_quietly(session.store.set_status, session.id, status)
            session.status = status
        finally:
            session.loops_ended(self)
