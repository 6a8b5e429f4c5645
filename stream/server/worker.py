"""One live session: runs the pipeline on the patient's stream, keeps every result, feeds dashboards.

Three coroutines per connected patient, none of which runs model code on the event loop:

* the *frame loop* takes the newest received frame whenever the model threads are free and runs
  ``Pipeline.ingest`` (detect or track, keyframe filter, align) in the shared executor; frames that
  were overwritten before it looked are stale drops;
* the *analysis loop* takes keyframes from the bounded ``KeyframeQueue`` and runs
  ``Pipeline.analyse`` (AU estimate, session statistics) plus the exercise segment's statistics,
  the findings with their evidence (throttled, ``server/findings.py``) and the SQLite writes in the
  same executor;
* the *publisher* coalesces changes into complete snapshots at most ``dashboard_hz`` times a second
  (and at least once a second, for stream health) and hands them to the ``Hub``.

A session reopened after a restart or a reconnect replays its stored AU series into the
accumulators, so its statistics continue where they stopped.

Lifecycle: one signalling exchange at a time per session (a second offer while one is being
answered gets 409); a later offer replaces the connection. Whatever stops the loops (the patient
hangs up or vanishes, no frame for ``stall_end_s``, a bug) goes through one ending: the failure is
logged once with the session id and shown on the dashboards (``alert``), the peer is closed, the
open exercise segment closes at the last frame received, and the final statistics, counts and
status are stored as far as the disk allows. Two faults are recovered instead. A change of frame
size: tracker, keyframe filter, AU reference and helper buffer start afresh. A failed SQLite write
(disk full): the session pauses, keeping its patient; frames are dropped (counted) while the write
that failed is retried with backoff, and analysis resumes with it once the disk takes it again, so
every keyframe analysed is stored and none is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.aus import AU_NAMES
from stream.errors import UnknownSessionError
from stream.server.executor import ANALYSIS, INGEST
from stream.server.exercises import PROTOCOL, Segment, Timeline
from stream.server.findings import FindingsSchedule, LiveSeries, findings_json, segment_counts
from stream.server.hub import Hub
from stream.server.ingest import KeyframeQueue, LatestFrame, PatientPeer, ReceivedFrame, SignallingError
from stream.server.jsonsafe import clean
from stream.server.settings import ServerSettings
from stream.server.store import SegmentRecord, SessionRecord, StorageError, Store
from stream.types import Frame, Keyframe

log = logging.getLogger(__name__)

STATISTICS_SAVE_INTERVAL_S = 1.0  # statistics snapshots (and frame counts) are written at most this often
ENDING_TIMEOUT_S = 10.0  # hang-up and shutdown wait at most this long for the loops to finish
# A failed write is retried after 0.5 s, then 1 s, then every 2 s: space freed on the disk is seen
# within 2 s, and a disk that stays full costs one small failed write every 2 s per session.
STORAGE_RETRY_FIRST_S = 0.5
STORAGE_RETRY_MAX_S = 2.0


class ModelPool:
    """The executor every session's model work runs in, and the detector weights they share.

    One bounded pool for all sessions: more patients share the same cores instead of each adding
    threads. The detector network is stateless and loaded once; each session wraps it in its own
    tracker (inside ``Pipeline``) and has its own AU estimator (per-session neutral reference).
    """

    def __init__(self, settings: ServerSettings, executor: Executor,
                 pipeline_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.executor = executor
        # With a PriorityExecutor a keyframe's analysis never waits behind queued frame ingests.
        at = getattr(executor, "at", None)
        self.analysis_executor: Executor = at(ANALYSIS) if at else executor
        self.ingest_executor: Executor = at(INGEST) if at else executor
        self._factory = pipeline_factory
        self._detector: Any = None
        self._lock = threading.Lock()

    def new_pipeline(self) -> Any:
        """Build a session's pipeline (call in the executor: the first call loads weights)."""
        if self._factory is not None:
            return self._factory()
        from stream.face.detect import build_detector
        from stream.pipeline import Pipeline

        cfg = self.settings.analysis
        with self._lock:
            if self._detector is None:
                self._detector = build_detector(cfg.detector, weights=cfg.weights, device=cfg.device)
        # The series lives in SQLite: the pipeline keeps no per-keyframe history, memory stays flat.
        return Pipeline(cfg, detector=self._detector, mirrored=self.settings.mirrored, keep_series=False)


@dataclass
class Health:
    frames_received: int = 0  # frames decoded off the patient's track
    frames_analysed: int = 0  # frames the detector/tracker looked at
    keyframes: int = 0  # keyframes analysed (AU values computed)
    keyframes_dropped: int = 0  # oldest waiting keyframe dropped because the queue was full
    frames_dropped_storage: int = 0  # not analysed: the database could not be written at the time
    connections: int = 0


# Where a keyframe's receipt-to-publication latency goes, in path order (see ``KeyframeTrace``).
LATENCY_STAGES = ("frame_wait", "ingest_queue", "ingest", "ingest_handoff", "keyframe_queue",
                  "analyse_queue", "analyse", "store_stats", "publish_wait", "serialise")


class KeyframeTrace:
    """``time.perf_counter`` stamps of one frame on its way to the dashboards.

    ``received`` (pump) -> ``picked`` (frame loop took it from the slot) -> ``ingest_start/end``
    (model thread) -> ``queued`` (in the keyframe queue) -> ``dequeued`` (analysis loop) ->
    ``analyse_start`` / ``estimated`` / ``analyse_end`` (model thread: AU estimate, then SQLite and
    statistics) -> ``publish_start`` / ``published`` (snapshot built, serialised, offered to viewers).
    """

    __slots__ = ("received", "picked", "ingest_start", "ingest_end", "queued", "dequeued",
                 "analyse_start", "estimated", "analyse_end")

    def __init__(self, received: float) -> None:
        self.received = received
        self.picked = self.ingest_start = self.ingest_end = self.queued = self.dequeued = received
        self.analyse_start = self.estimated = self.analyse_end = received

    def stages(self, publish_start: float, published: float) -> list[float]:
        """Milliseconds spent in each of ``LATENCY_STAGES``."""
        stamps = (self.received, self.picked, self.ingest_start, self.ingest_end, self.queued,
                  self.dequeued, self.analyse_start, self.estimated, self.analyse_end, publish_start, published)
        return [(b - a) * 1000.0 for a, b in zip(stamps, stamps[1:])]


def _clean(value: Any) -> Any:
    """JSON-safe numbers (NaN/inf -> None), rounded to keep dashboard messages small."""
    return clean(value, decimals=3)


def statistics_summary(statistics: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the per-exercise table needs of a scope; the matrices stay out of every snapshot."""
    if statistics is None:
        return None
    keys = ("n_keyframes", "asymmetry_threshold", "regions", "synkinesis", "findings")
    return {k: statistics[k] for k in keys if k in statistics}


def dashboard_statistics(state: Any) -> dict[str, Any]:
    """The parts of a ``SymptomState`` a dashboard draws: everything but the four raw CM matrices.

    Already JSON-safe and rounded (``_clean``): computed once per keyframe in the model thread, so
    the event loop does not walk the matrices again at every snapshot.
    """
    out = state.to_json()
    out.pop("cooccurrence", None)
    out["mask"] = np.asarray(state.mask, dtype=int).tolist()
    return _clean(out)


@dataclass(frozen=True)
class Alert:
    """What the dashboards show above the stream health when something is wrong."""

    code: str  # "stalled" | "analysis_stopped" | "storage"
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class LiveSession:
    def __init__(self, record: SessionRecord, settings: ServerSettings, store: Store, models: ModelPool) -> None:
        self.id = record.id
        self.created_at = record.created_at
        self.settings = settings
        self.store = store
        self.models = models
        self.hub = Hub(settings.client_queue)
        stored = store.series(record.id)
        counts = record.counts  # stored during the last run: health continues across a restart
        received = int(counts.get("frames_received", 0))
        dropped_storage = int(counts.get("frames_dropped_storage", 0))
        self.health = Health(frames_received=received,
                             frames_analysed=received - int(counts.get("frames_stale_dropped", 0)) - dropped_storage,
                             keyframes=len(stored.series), keyframes_dropped=int(counts.get("keyframes_dropped", 0)),
                             frames_dropped_storage=dropped_storage)
        self._pipeline_counts_before = {k: int(v) for k, v in counts.items()
                                        if k in ("frames", "keyframes", "frames_without_face", "frames_with_several_faces")}
        self.status = record.status
        self.alert: Alert | None = None
        # While the database cannot be written: the alert shown (and shown again after a stall clears).
        self._outage: Alert | None = None
        # A keyframe analysed whose row is not written yet (the write failed): written before any other.
        self._unstored: tuple[Any, ReceivedFrame, Segment | None, KeyframeTrace] | None = None
        self._retrack = False  # frames were skipped during an outage: the tracker finds the face afresh
        self.peer: PatientPeer | None = None
        self.pipeline: Any = None
        self.estimator_info: dict[str, Any] = dict(record.estimator)
        self.users = 0  # registry leases (requests, dashboards, an offer being answered)
        self._signalling = asyncio.Lock()
        self._slot: LatestFrame[ReceivedFrame] | None = None
        self._received_before = received
        self._frame_shape: tuple[int, ...] | None = None
        self._last_frame_s: float | None = None  # session time of the newest frame received
        self._counts_saved_at = -math.inf

        self.timeline = Timeline([Segment(s.segment_id, s.exercise, s.start_s, s.end_s) for s in store.segments(record.id)])
        self._stored = stored
        self._seq = len(stored.series)
        self._frame_index = int(stored.series.frames.max()) + 1 if len(stored.series) else 0
        self._tail: deque[tuple[int, float, list[float], list[float]]] = deque(maxlen=settings.series_tail)
        for i in range(max(0, len(stored.series) - settings.series_tail), len(stored.series)):
            s = stored.series
            self._tail.append(_clean((i, float(s.time_s[i]), s.left[i], s.right[i])))
        self._latest: dict[str, Any] | None = None
        if self._tail:
            i, t, left, right = self._tail[-1]
            self._latest = _clean({"seq": i, "frame_index": int(stored.series.frames[-1]), "time_s": t,
                                   "received_at": float(stored.received_at[-1]), "left": left, "right": right})
        self._accumulators: dict[int, Any] = {}
        self._statistics: dict[str, Any] = {}  # scope -> dashboard statistics, with "findings"
        self._saved_at: dict[str, float] = {}
        self._session_accumulator: Any = None  # pipeline.statistics once a pipeline exists
        # The findings need a scope's whole series at once: kept here, appended per keyframe.
        self._series = LiveSeries.from_stored(stored, {s.segment_id: s.exercise for s in self.timeline.segments})
        self._findings: dict[str, Any] = {}  # scope -> Findings.to_json(); absent: not computed yet
        self._findings_due = FindingsSchedule()
        self._findings_lock = threading.Lock()  # one findings computation at a time
        self._merge_lock = threading.Lock()  # statistics and findings of a scope are set from two threads
        self._findings_failed = False
        self._findings_job: asyncio.Task[Any] | None = None
        self._replay_statistics()

        self._keyframes: KeyframeQueue[tuple[Keyframe, ReceivedFrame, Segment | None, KeyframeTrace]] = KeyframeQueue(settings.keyframe_queue)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._pending_latency: deque[KeyframeTrace] = deque()
        self._dropped_before = self.health.keyframes_dropped
        # per keyframe, receipt -> snapshot offered to the viewers: (total, *LATENCY_STAGES) in ms
        self._latency_rows: deque[tuple[float, ...]] = deque(maxlen=300)
        self._latency_summary: dict[str, Any] = {"latency_ms_p50": None, "latency_ms_p95": None, "latency_stages_ms": {}}
        self._rate_samples: deque[tuple[float, int, int]] = deque(maxlen=64)
        self._publisher: asyncio.Task[Any] | None = None
        self._analysis_done: asyncio.Event = asyncio.Event()
        self._analysis_done.set()
        self.publish_now()
        if len(self._series):
            self._spawn(self._load_findings())

    # -- statistics ----------------------------------------------------------------------------
    def _new_accumulator(self) -> Any:
        from stream.symptoms.statistics import SymptomAccumulator

        return SymptomAccumulator(active_threshold=self.settings.analysis.active_threshold)

    def _snapshot(self, accumulator: Any) -> Any:
        return accumulator.snapshot(self._normal_matrix(), **self.settings.analysis.symptom_thresholds())

    def _replay_statistics(self) -> None:
        """Rebuild the accumulators from the stored series (reopened or resumed session)."""
        series, segments = self._stored.series, self._stored.segment_ids
        self._session_accumulator = self._new_accumulator()
        if len(series):
            self._session_accumulator.update_many(series.left, series.right)
        self._set_statistics("session", self._snapshot(self._session_accumulator))
        if len(series):
            self._findings_due.changed("session")
        for seg in self.timeline.segments:
            acc = self._new_accumulator()
            rows = segments == seg.segment_id
            if rows.any():
                acc.update_many(series.left[rows], series.right[rows])
                self._findings_due.changed(f"segment:{seg.segment_id}")
            self._accumulators[seg.segment_id] = acc
            self._set_statistics(f"segment:{seg.segment_id}", self._snapshot(acc))

    def _set_statistics(self, scope: str, state: Any) -> None:
        """A scope's new statistics, with its latest findings (None: no findings computed yet)."""
        stats = dashboard_statistics(state)
        with self._merge_lock:
            self._statistics[scope] = {**stats, "findings": self._findings.get(scope)}

    def _update_findings(self, force: bool = False) -> None:
        """Recompute the findings of the scopes that are due (model thread): see ``server/findings.py``.

        An exercise that has ended gets its findings at once; ``force`` (end of the stream, a
        reopened session) computes every scope that has keyframes its findings do not include.
        """
        with self._findings_lock:
            counts = None
            for scope, version in self._findings_due.due(time.monotonic(), closed=self._ended_scopes(), force=force):
                started = time.monotonic()
                counts = counts or self.counts()
                try:
                    if scope == "session":
                        series, context = self._series.select()
                        found = findings_json(series, context, counts, self.settings.analysis, self._normal_matrix())
                    else:
                        series, context = self._series.select(int(scope.split(":", 1)[1]))
                        found = findings_json(series, context, segment_counts(counts), self.settings.analysis,
                                              self._normal_matrix())
                except Exception:
                    # The verdicts are not worth the session: the AU values and statistics go on.
                    if not self._findings_failed:
                        log.exception("session %s: findings of %s could not be computed", self.id, scope)
                    self._findings_failed = True
                else:
                    with self._merge_lock:
                        self._findings[scope] = found
                        if scope in self._statistics:
                            self._statistics[scope] = {**self._statistics[scope], "findings": found}
                self._findings_due.done(scope, version, started, time.monotonic())

    def _ended_scopes(self) -> set[str]:
        current = self.timeline.current
        return {f"segment:{seg.segment_id}" for seg in self.timeline.segments
                if current is None or seg.segment_id != current.segment_id}

    def _schedule_findings(self) -> None:
        """After a keyframe: findings that are due, as their own job, so the keyframe is shown without waiting."""
        if ((self._findings_job is None or self._findings_job.done())
                and self._findings_due.due(time.monotonic(), closed=self._ended_scopes())):
            self._findings_job = self._spawn(self._run_findings())

    async def _run_findings(self) -> None:
        loop = asyncio.get_running_loop()
        # Ingest priority: a keyframe's analysis (this or another session's) goes first.
        await loop.run_in_executor(self.models.ingest_executor, self._update_findings)
        self._changed.set()

    async def _load_findings(self) -> None:
        """A reopened session's findings, computed off the event loop, then shown."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.models.analysis_executor, self._update_findings, True)
        self.publish_now()

    def _normal_matrix(self) -> Any:
        from stream.symptoms.normal import load_normal_cooccurrence

        if not hasattr(self, "_normal"):
            self._normal = load_normal_cooccurrence(self.settings.analysis.normal_cooccurrence)
        return self._normal

    # -- patient connection ---------------------------------------------------------------------
    async def connect(self, offer: Any) -> Any:
        """Answer a patient's offer; a new offer replaces the previous connection.

        One exchange at a time: an offer that arrives while another is being answered is refused
        (409), so two sets of loops never share one pipeline.
        """
        if self._signalling.locked():
            raise SignallingError(409, "another offer for this session is being answered")
        async with self._signalling:
            if self.peer is not None:
                await self.disconnect()
            loop = asyncio.get_running_loop()
            if self.pipeline is None:
                self.pipeline = await loop.run_in_executor(self.models.executor, self.models.new_pipeline)
                # Continue the session statistics where the stored series left them.
                self.pipeline.statistics = self._session_accumulator
                estimator = self.pipeline.estimator
                self.estimator_info = {"name": estimator.name, "is_proxy": bool(estimator.is_proxy),
                                       "model": estimator.model_info()}
                self.store.set_estimator(self.id, self.estimator_info)
            peer = PatientPeer(self.settings.ice_servers, on_video=lambda slot: self._start_loops(peer, slot),
                               on_closed=lambda: self._on_closed(peer))
            answer = await peer.answer(offer)
            self.peer = peer
            self.health.connections += 1
            self.alert = None
            self.status = "live"
            self.store.set_status(self.id, "live")
            self._spawn(self._watch_connection(peer))
            self._changed.set()
            return answer

    async def _watch_connection(self, peer: PatientPeer) -> None:
        """Close an answered peer that does not connect in time (the client vanished, or DTLS failed)."""
        try:
            await asyncio.wait_for(peer.connected.wait(), self.settings.connect_timeout_s)
        except asyncio.TimeoutError:
            log.info("session %s: the patient's connection did not come up within %g s; closed",
                     self.id, self.settings.connect_timeout_s)
            await peer.close()

    def _on_closed(self, peer: PatientPeer) -> None:
        if self.peer is peer:
            self.peer = None
        if self._analysis_done.is_set() and self.status == "live":
            # Closed before any video arrived: nothing was streamed, the patient may try again.
            self.status = "waiting"
            self._store_quietly(self.store.set_status, self.id, "waiting")
        self._changed.set()

    async def disconnect(self) -> None:
        """Close the patient's connection and wait (boundedly) for the loops to store what they have."""
        if self.peer is not None:
            peer, self.peer = self.peer, None
            await peer.close()
        try:
            await asyncio.wait_for(self._analysis_done.wait(), ENDING_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("session %s: analysis did not finish within %g s of the hang-up", self.id, ENDING_TIMEOUT_S)

    async def hang_up(self) -> None:
        """The patient ends the session: its patient link stops working."""
        async with self._signalling:
            await self.disconnect()
            self._close_open_segment()
            self.status = "ended"
            self._store_quietly(self.store.set_status, self.id, "ended")
            self._changed.set()

    def reopen(self) -> None:
        """An admin action: an ended session takes its patient link again (a second sitting)."""
        if self.status == "ended" and self.peer is None:
            self.status, self.alert = "waiting", None
            self.store.set_status(self.id, "waiting")
            self._changed.set()

    def _start_loops(self, peer: PatientPeer, slot: LatestFrame[ReceivedFrame]) -> None:
        self._keyframes = KeyframeQueue(self.settings.keyframe_queue)
        self._analysis_done.clear()
        self._slot = slot
        self._received_before = self.health.frames_received
        frames = self._spawn(self._frame_loop(slot, self._keyframes))
        self._spawn(self._analysis_loop(peer, self._keyframes, frames))
        self._ensure_publisher()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _ensure_publisher(self) -> None:
        if self._publisher is None or self._publisher.done():
            self._publisher = self._spawn(self._publish_loop())

    def _set_alert(self, code: str, message: str) -> None:
        if self.alert is None or self.alert.code != code:
            self.alert = Alert(code, message)
            self._changed.set()

    def _store_quietly(self, write: Callable[..., Any], *args: Any) -> bool:
        """A write on the way out: a failure is shown and logged once, never raised."""
        try:
            write(*args)
            return True
        except StorageError as exc:
            if self.alert is None or self.alert.code != "storage":
                log.error("session %s: %s", self.id, exc)
            self._set_alert("storage", f"analysis stopped: the database cannot be written ({exc.__cause__ or exc})")
            return False

    async def _next_frame(self, slot: LatestFrame[ReceivedFrame], seen: int) -> tuple[int, ReceivedFrame | None]:
        """The next newer frame; shows a stall after ``stall_after_s`` and gives up at ``stall_end_s``."""
        try:
            return await asyncio.wait_for(slot.newer_than(seen), self.settings.stall_after_s)
        except asyncio.TimeoutError:
            pass
        self._set_alert("stalled", f"patient stalled: no frame for {self.settings.stall_after_s:g} s")
        remaining = self.settings.stall_end_s - self.settings.stall_after_s
        try:
            found = await asyncio.wait_for(slot.newer_than(seen), remaining)
        except asyncio.TimeoutError:
            self._set_alert("stalled", f"patient stalled: no frame for {self.settings.stall_end_s:g} s; session ended")
            log.info("session %s: no frame for %g s, ending", self.id, self.settings.stall_end_s)
            return seen, None
        if self.alert is not None and self.alert.code == "stalled":
            self.alert = self._outage  # the database may still be unwritable
        return found

    async def _frame_loop(self, slot: LatestFrame[ReceivedFrame], keyframes: KeyframeQueue[Any]) -> None:
        loop = asyncio.get_running_loop()
        seen = 0
        try:
            while True:
                seen, item = await self._next_frame(slot, seen)
                self.health.frames_received = self._received_before + slot.seq
                if item is None:
                    break
                self._last_frame_s = item.received_at - self.created_at
                if self._outage is not None:  # nothing analysed now could be stored: drop, count, wait
                    self.health.frames_dropped_storage += 1
                    self._retrack = True
                    continue
                trace = KeyframeTrace(item.received_mono)
                trace.picked = time.perf_counter()
                result = await loop.run_in_executor(self.models.ingest_executor, self._ingest, item, trace)
                self.health.frames_analysed += 1
                if result.keyframe is not None:
                    segment = self.timeline.segment_at(result.keyframe.time_s)
                    trace.queued = time.perf_counter()
                    # No publish here: the snapshot would not have the keyframe yet and would use
                    # up the coalescing interval just before its analysis ends.
                    keyframes.put((result.keyframe, item, segment, trace))
        except Exception as exc:
            log.exception("session %s: frame loop failed", self.id)
            self._set_alert("analysis_stopped", f"analysis stopped: {type(exc).__name__}: {exc}"[:300])
        finally:
            keyframes.close()

    def _ingest(self, item: ReceivedFrame, trace: KeyframeTrace) -> Any:
        trace.ingest_start = time.perf_counter()
        image = item.frame.to_ndarray(format="rgb24")
        frame = Frame(self._frame_index, item.received_at - self.created_at, image)
        self._frame_index += 1
        if self._frame_shape is not None and image.shape != self._frame_shape:
            self._restart_tracking(image.shape)
        elif self._retrack and hasattr(self.pipeline, "tracker"):
            # Seconds of frames went unseen: the face's points are stale. The AU reference stays
            # (same face, same camera), so the series goes on where it paused.
            self.pipeline.tracker.reset()
        self._retrack = False
        self._frame_shape = image.shape
        result = self.pipeline.ingest(frame)
        trace.ingest_end = time.perf_counter()
        return result

    def _restart_tracking(self, shape: tuple[int, ...]) -> None:
        """The sender changed resolution (bandwidth, CPU, another camera): start the face afresh.

        Points, the keyframe crop and the AU reference of the old size do not describe the new
        frames; the session's statistics and stored series go on.
        """
        log.info("session %s: frame size changed from %s to %s; tracking, keyframes and AU reference restart",
                 self.id, "x".join(map(str, self._frame_shape[1::-1])) if self._frame_shape else "?",
                 "x".join(map(str, shape[1::-1])))
        self.pipeline.tracker.reset()
        # The next keyframe is the new AU reference: the estimator and the helper buffer are reset in
        # the analysis thread when it gets there (Pipeline.analyse), not here while it may be encoding.
        self.pipeline.rereference()

    async def _analysis_loop(self, peer: PatientPeer, keyframes: KeyframeQueue[Any], frames: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                entry = await keyframes.get()
                self.health.keyframes_dropped = self._dropped_before + keyframes.dropped
                if entry is None:
                    break
                entry[3].dequeued = time.perf_counter()
                try:
                    await loop.run_in_executor(self.models.analysis_executor, self._analyse, *entry)
                except StorageError as exc:
                    if not await self._wait_for_storage(exc, frames):
                        break  # the stream ended while the disk was still full
                self._changed.set()
                self._schedule_findings()
        except Exception as exc:
            log.exception("session %s: analysis loop failed", self.id)
            self._set_alert("analysis_stopped", f"analysis stopped: {type(exc).__name__}: {exc}"[:300])
        finally:
            await self._end_stream(peer, keyframes, frames)

    async def _wait_for_storage(self, exc: StorageError, frames: asyncio.Task[Any]) -> bool:
        """A write failed: pause until the write that failed succeeds again; False if the stream ends first.

        The patient stays connected and the status live; the frame loop drops frames meanwhile
        (``frames_dropped_storage``), so nothing is analysed that could not be stored.
        """
        loop = asyncio.get_running_loop()
        log.error("session %s: analysis paused: %s; retrying every %g s", self.id, exc, STORAGE_RETRY_MAX_S)
        self._outage = Alert("storage", f"analysis stopped: the database cannot be written ({exc.__cause__ or exc}); "
                                        "it resumes by itself once the disk has space again")
        self.alert = self._outage
        self._changed.set()
        dropped_before = self.health.frames_dropped_storage
        delay = STORAGE_RETRY_FIRST_S
        while True:
            ended, _ = await asyncio.wait({frames}, timeout=delay)
            try:
                await loop.run_in_executor(self.models.analysis_executor, self._retry_storage)
            except StorageError:
                if ended:
                    return False
                delay = min(2 * delay, STORAGE_RETRY_MAX_S)
                continue
            break
        if self.alert is self._outage:
            self.alert = None
        self._outage = None
        log.info("session %s: the database can be written again; analysis resumes (%d frames dropped meanwhile)",
                 self.id, self.health.frames_dropped_storage - dropped_before)
        return True

    async def _end_stream(self, peer: PatientPeer, keyframes: KeyframeQueue[Any], frames: asyncio.Task[Any]) -> None:
        """The one way a stream ends: loops stopped, peer closed, segment closed, record stored."""
        loop = asyncio.get_running_loop()
        try:
            frames.cancel()
            await asyncio.gather(frames, return_exceptions=True)
            self._dropped_before += keyframes.dropped
            # A connection that never delivered a frame ended nothing: the patient may try again.
            streamed = self._slot is not None and self._slot.seq > 0
            await peer.close()
            self._close_open_segment()
            try:
                await asyncio.wait_for(loop.run_in_executor(self.models.executor, self._store_quietly, self._finish),
                                       ENDING_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("session %s: final statistics not stored within %g s", self.id, ENDING_TIMEOUT_S)
            except Exception:
                log.exception("session %s: final statistics failed", self.id)
            # Stored first, then shown: a dashboard that reads "ended" finds the final record stored.
            status = "ended" if streamed else "waiting"
            self._store_quietly(self.store.set_status, self.id, status)
            self.status = status
        finally:
            self._slot = None
            self._analysis_done.set()
            self._changed.set()

    def _analyse(self, keyframe: Keyframe, item: ReceivedFrame, segment: Segment | None, trace: KeyframeTrace) -> None:
        trace.analyse_start = time.perf_counter()
        estimate = self.pipeline.analyse(keyframe).estimate
        trace.estimated = time.perf_counter()
        self._unstored = (estimate, item, segment, trace)
        self._record()

    def _retry_storage(self) -> None:
        """The write that failed, again (model thread): the unstored keyframe first, else the statistics and counts."""
        if self._unstored is not None:
            self._record()
        else:
            self._save_records()

    def _record(self) -> None:
        """Store the analysed keyframe in ``_unstored``, then show and count it.

        Raises ``StorageError`` with the keyframe still unstored (its seq unused, retried as it is)
        or, if only the statistics or counts after it failed, with the keyframe stored and counted.
        """
        assert self._unstored is not None
        estimate, item, segment, trace = self._unstored
        seq = self._seq
        seg_id = segment.segment_id if segment is not None else None
        self.store.add_keyframe(self.id, seq, estimate.frame_index, estimate.time_s, item.received_at, seg_id,
                                estimate.n_helpers, estimate.left, estimate.right,
                                closure=estimate.closure, movement=estimate.movement)
        self._unstored = None
        self._seq += 1
        self._series.append(estimate, seg_id, segment.exercise if segment is not None else "")
        # Stored, so shown and counted: keyframes analysed = keyframes stored, whatever fails next.
        # Rounded and JSON-safe here, once, not at every snapshot on the event loop.
        left, right = _clean(estimate.left), _clean(estimate.right)
        self._tail.append((seq, _clean(estimate.time_s), left, right))
        self._latest = _clean({"seq": seq, "frame_index": estimate.frame_index, "time_s": estimate.time_s,
                               "received_at": item.received_at, "left": left, "right": right})
        self.health.keyframes += 1
        scopes = {"session": self._session_accumulator}
        if seg_id is not None:
            acc = self._accumulators.setdefault(seg_id, self._new_accumulator())
            acc.update(estimate.left, estimate.right)
            scopes[f"segment:{seg_id}"] = acc
        now = time.monotonic()
        for scope in scopes:
            self._findings_due.changed(scope)  # computed after this keyframe is shown: ``_schedule_findings``
        states = {scope: self._snapshot(acc) for scope, acc in scopes.items()}
        for scope, state in states.items():
            self._set_statistics(scope, state)
        trace.analyse_end = time.perf_counter()
        self._pending_latency.append(trace)  # shown now, whatever the writes below do
        for scope, state in states.items():
            if now - self._saved_at.get(scope, -math.inf) >= STATISTICS_SAVE_INTERVAL_S:
                self.store.save_statistics(self.id, scope, estimate.time_s, self._stored_statistics(scope, state))
                self._saved_at[scope] = now
        if now - self._counts_saved_at >= STATISTICS_SAVE_INTERVAL_S:
            self.store.set_counts(self.id, self.counts())  # a killed server keeps its frame counts
            self._counts_saved_at = now

    def _save_records(self) -> None:
        """Statistics of every scope and the frame counts, as they are now (model thread)."""
        now = time.monotonic()
        time_s = self._latest["time_s"] if self._latest else 0.0
        self.store.save_statistics(self.id, "session", time_s,
                                   self._stored_statistics("session", self._snapshot(self._session_accumulator)))
        self._saved_at["session"] = now
        for seg_id, acc in self._accumulators.items():
            self.store.save_statistics(self.id, f"segment:{seg_id}", 0.0,
                                       self._stored_statistics(f"segment:{seg_id}", self._snapshot(acc)))
            self._saved_at[f"segment:{seg_id}"] = now
        self.store.set_counts(self.id, self.counts())
        self._counts_saved_at = now

    def _stored_statistics(self, scope: str, state: Any) -> dict[str, Any]:
        return {**state.to_json(), "findings": self._findings.get(scope)}

    def _finish(self) -> None:
        """Final statistics and findings of every scope and the frame counts: the stored record is complete."""
        if self._unstored is not None:  # the stream ended while a keyframe waited for the disk: a last try
            self._record()
        self._update_findings(force=True)
        self._save_records()
        if self.pipeline is not None and hasattr(self.pipeline, "timer"):
            log.info("session %s pipeline stages (ms): %s", self.id, json.dumps(
                {k: {m: round(x, 2) for m, x in v.items()} for k, v in self.pipeline.timer.summary().items()}))

    def counts(self) -> dict[str, Any]:
        counts = dict(self._pipeline_counts_before)
        if self.pipeline is not None:
            for key, value in self.pipeline.counts.as_dict().items():
                counts[key] = counts.get(key, 0) + value
        return {**counts, "frames_received": self.health.frames_received,
                "frames_stale_dropped": self._stale(),
                "frames_dropped_storage": self.health.frames_dropped_storage,
                "keyframes_dropped": self.health.keyframes_dropped}

    def _stale(self) -> int:
        """Frames overwritten in the latest-frame slot before the models looked."""
        h = self.health
        return h.frames_received - h.frames_analysed - h.frames_dropped_storage

    # -- exercises -------------------------------------------------------------------------------
    def session_time(self) -> float:
        return time.time() - self.created_at

    def start_exercise(self, key: str) -> Segment:
        if key == "rest" and self.pipeline is not None:
            # The rest exercise is the protocol's neutral face: the AU reference is taken from it.
            self.pipeline.rereference()
        closed, segment = self.timeline.start(key, self.session_time())
        if closed is not None:
            self._close_segment(closed)
        self._accumulators[segment.segment_id] = self._new_accumulator()
        self._set_statistics(f"segment:{segment.segment_id}", self._snapshot(self._accumulators[segment.segment_id]))
        self.store.start_segment(self.id, SegmentRecord(segment.segment_id, segment.exercise, segment.start_s, segment.end_s))
        self._changed.set()
        return segment

    def stop_exercise(self) -> Segment | None:
        closed = self.timeline.stop(self.session_time())
        if closed is not None:
            self._close_segment(closed)
        self._changed.set()
        return closed

    def _close_segment(self, segment: Segment) -> None:
        assert segment.end_s is not None
        self.store.end_segment(self.id, segment.segment_id, segment.end_s)

    def _close_open_segment(self) -> None:
        """At the end of a stream the running exercise ends with the last frame that came in."""
        closed = self.timeline.stop(self._last_frame_s if self._last_frame_s is not None else self.session_time())
        if closed is not None:
            assert closed.end_s is not None
            self._store_quietly(self.store.end_segment, self.id, closed.segment_id, closed.end_s)

    # -- dashboards ------------------------------------------------------------------------------
    async def _publish_loop(self) -> None:
        interval = 1.0 / self.settings.dashboard_hz
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self._changed.clear()
            self.publish_now()
            if self.peer is None and self._analysis_done.is_set() and not self._changed.is_set():
                self._publisher = None
                return
            await asyncio.sleep(interval)  # coalescing: at most dashboard_hz snapshots a second

    def publish_now(self) -> None:
        start = time.perf_counter()
        traces = []
        while self._pending_latency:  # appended by the model thread
            traces.append(self._pending_latency.popleft())
        self.hub.publish(json.dumps(self.snapshot(), separators=(",", ":"), allow_nan=False))
        published = time.perf_counter()
        for trace in traces:
            self._latency_rows.append(((published - trace.received) * 1000.0, *trace.stages(start, published)))
        if traces:  # the figures of the next snapshots (at most one percentile call per publish)
            p50, p95 = np.percentile(np.asarray(self._latency_rows), [50, 95], axis=0)
            self._latency_summary = {
                "latency_ms_p50": float(p50[0]), "latency_ms_p95": float(p95[0]),
                # where it went, per stage of the path, over the same last 300 keyframes: [p50, p95]
                "latency_stages_ms": {name: [float(a), float(b)] for name, a, b in zip(LATENCY_STAGES, p50[1:], p95[1:])},
            }

    def _rates(self) -> tuple[float | None, float | None]:
        now = time.monotonic()
        self._rate_samples.append((now, self.health.frames_received, self.health.keyframes))
        while len(self._rate_samples) > 2 and now - self._rate_samples[0][0] > 3.0:
            self._rate_samples.popleft()
        t0, f0, k0 = self._rate_samples[0]
        if now - t0 < 0.5:
            return None, None
        return (self.health.frames_received - f0) / (now - t0), (self.health.keyframes - k0) / (now - t0)

    def statistics(self, scope: str) -> dict[str, Any] | None:
        """Dashboard statistics of ``session`` or ``segment:<id>``, matrices included."""
        return self._statistics.get(scope)  # cleaned when computed

    def snapshot(self) -> dict[str, Any]:
        if self._slot is not None:  # frames keep arriving while the models are busy: count them now
            self.health.frames_received = self._received_before + self._slot.seq
        fps, kps = self._rates() if self.peer is not None else (None, None)
        tail = list(self._tail)
        current = self.timeline.current
        # Full statistics (matrices included) for the whole session and the running exercise; the
        # others as summaries, their matrices on request (``statistics``): snapshots stay small.
        segments = []
        for seg in self.timeline.segments:
            stats = self._statistics.get(f"segment:{seg.segment_id}")
            segments.append({**_clean(seg.to_json()), "statistics": stats if current is not None and seg.segment_id == current.segment_id else statistics_summary(stats)})
        # Statistics, series and latest values were cleaned when computed; only the small rest here.
        return {
            "type": "snapshot",
            "session": self.id,
            "status": self.status,
            "live": self.peer is not None,
            "alert": self.alert.to_json() if self.alert is not None else None,
            "sent_at": _clean(time.time()),
            "session_time_s": _clean(self.session_time()),
            "aus": list(AU_NAMES),
            "estimator": _clean(self.estimator_info),
            "mirrored": self.settings.mirrored,
            "latest": self._latest,
            "series": {
                "seq": [t[0] for t in tail], "time_s": [t[1] for t in tail],
                "left": [t[2] for t in tail], "right": [t[3] for t in tail],
            },
            "statistics": {"session": self._statistics.get("session"), "segments": segments},
            "exercise": _clean({"current": current.to_json() if current else None,
                                "protocol": [e.key for e in PROTOCOL]}),
            "health": _clean({
                "frames_per_s": fps, "keyframes_per_s": kps,
                "frames_received": self.health.frames_received,
                "frames_analysed": self.health.frames_analysed,
                "frames_stale_dropped": self._stale(),
                "frames_dropped_storage": self.health.frames_dropped_storage,
                "keyframes": self.health.keyframes,
                "keyframes_dropped": self.health.keyframes_dropped,
                **self._latency_summary,
                "viewers": len(self.hub),
                "viewer_updates_dropped": self.hub.dropped(),
            }),
        }

    async def close(self) -> None:
        if self.peer is not None or not self._analysis_done.is_set():
            await self.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)



class SessionRegistry:
    """The sessions held in memory: live ones, and stored ones a clinician has reopened.

    Every user of a session holds a lease (``use``): a request, a dashboard, an offer being
    answered. A session leaves memory only when its last lease ends and nothing streams, so a
    request or a closing dashboard cannot drop a session while an offer is answered.
    """

    def __init__(self, settings: ServerSettings, store: Store, models: ModelPool) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self._open: dict[str, LiveSession] = {}
        self._lock = asyncio.Lock()

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._open

    def get(self, session_id: str) -> LiveSession | None:
        return self._open.get(session_id)

    async def open(self, session_id: str) -> LiveSession:
        """Take a lease on a session (loaded from the store if needed); give it back with ``release``."""
        async with self._lock:
            session = self._open.get(session_id)
            if session is None:
                record = self.store.session(session_id)
                if record is None:
                    raise UnknownSessionError(session_id)
                session = LiveSession(record, self.settings, self.store, self.models)
                self._open[session_id] = session
            session.users += 1
            return session

    async def release(self, session_id: str) -> None:
        """End a lease; forget the session once nobody uses it (no lease, no patient); its data stays stored."""
        async with self._lock:
            session = self._open.get(session_id)
            if session is None:
                return
            session.users = max(0, session.users - 1)
            if session.users == 0 and session.peer is None and session._analysis_done.is_set():
                del self._open[session_id]
                await session.close()

    @contextlib.asynccontextmanager
    async def use(self, session_id: str) -> AsyncIterator[LiveSession]:
        session = await self.open(session_id)
        try:
            yield session
        finally:
            await self.release(session_id)

    async def close_all(self) -> None:
        async with self._lock:
            sessions, self._open = list(self._open.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
