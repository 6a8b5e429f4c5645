"""One live session in the server: the patient's connection, its loops, exercises, persistence and dashboards.

The analysis itself (pipeline, statistics per scope, findings, snapshot contents) is the core's
``AnalysisSession``; this class schedules it. It answers the patient's offer (``connect``), runs
one ``StreamLoops`` per connection (``loops.py``), stores through its ``Recorder`` (``recorder.py``)
and publishes snapshots through its ``Publisher`` (``snapshot.py``) to its ``Hub``. None of it runs
model code on the event loop.

A session reopened after a restart or a reconnect replays its stored AU series into the
statistics, so they continue where they stopped.

Lifecycle: one signalling exchange at a time per session (a second offer while one is being
answered gets 409); a later offer replaces the connection. A change of frame size restarts
tracking, keyframes and the AU reference (``AnalysisSession.ingest``); a failed SQLite write
pauses the analysis until the disk takes it again (``loops.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiortc import RTCSessionDescription

from stream.server.health import Alert, AlertCode, Health, RateMeter
from stream.server.hub import Hub
from stream.server.ingest import LatestFrame, PatientPeer, ReceivedFrame, SignallingError
from stream.server.latency import KeyframeTrace, LatencyStats
from stream.server.loops import ENDING_TIMEOUT_S, StreamLoops
from stream.server.models import ModelPool
from stream.server.recorder import Recorder
from stream.server.settings import ServerSettings
from stream.server.snapshot import LiveSnapshot, Publisher, StreamHealth
from stream.server.store import SessionRecord, StorageError, Store
from stream.session.analysis import AnalysisSession, SessionHistory
from stream.session.exercises import Segment
from stream.session.jsonsafe import JSONObject
from stream.session.snapshot import EstimatorInfo

log = logging.getLogger(__name__)

T = TypeVar("T")


class LiveSession:
    def __init__(
        self,
        record: SessionRecord,
        settings: ServerSettings,
        store: Store,
        models: ModelPool,
        hub: Hub | None = None,
        observe_latency: Callable[[float], None] | None = None,
    ) -> None:
        """``hub``: where snapshots go (with ``--redis`` a ``ClusterHub``: to every node's viewers);
        ``observe_latency``: called with each keyframe's receipt-to-publication seconds (metrics)."""
        self.id = record.id
        self.created_at = record.created_at
        self.settings = settings
        self.store = store
        self.models = models
        self.hub = hub if hub is not None else Hub(settings.client_queue)
        stored = store.series(record.id)
        counts = {k: int(v) for k, v in record.counts.items() if isinstance(v, (int, float))}
        history = SessionHistory(
            stored.series, stored.segment_ids, stored.received_at, tuple(store.segments(record.id)), counts
        )
        self.analysis = AnalysisSession(
            settings.analysis,
            models.normal,
            name=record.id,
            mirrored=settings.mirrored,
            history=history,
            estimator=EstimatorInfo.from_json(record.estimator),
            tail=settings.series_tail,
        )
        # Stored during the last run: health continues across a restart.
        self.health = Health.from_counts(record.counts, keyframes=len(stored.series))
        self.status = record.status
        self.alert: Alert | None = None
        # While the database cannot be written: the alert shown (and shown again after a stall clears).
        self.outage: Alert | None = None
        self.peer: PatientPeer | None = None
        self.users = 0  # registry leases (requests, dashboards, an offer being answered)
        self.last_frame_s: float | None = None  # session time of the newest frame received
        self.latency = LatencyStats(observe_latency)
        self.recorder = Recorder(store, self.id, self.analysis, self.counts, self._shown)
        self.publisher = Publisher(self.hub, self.snapshot, self.latency, settings.dashboard_hz)
        self._rates = RateMeter()
        self._signalling = asyncio.Lock()
        self._loops: StreamLoops | None = None  # the running connection's loops
        self._loops_done = asyncio.Event()
        self._loops_done.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._findings_job: asyncio.Task[None] | None = None
        self.publisher.publish_now()
        if len(stored.series):
            self.spawn(self._load_findings())

    @property
    def idle(self) -> bool:
        """No patient connected and no loop running: nothing will change until a request does."""
        return self.peer is None and self._loops_done.is_set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as one of this session's tasks (cancelled by ``close``)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def session_time(self) -> float:
        return time.time() - self.created_at

    # -- patient connection ---------------------------------------------------------------------
    async def connect(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer a patient's offer; a new offer replaces the previous connection.

        One exchange at a time: an offer that arrives while another is being answered is refused
        (409), so two sets of loops never share one pipeline.
        """
        if self._signalling.locked():
            raise SignallingError(409, "another offer for this session is being answered")
        async with self._signalling:
            if self.peer is not None:
                await self.disconnect()
            await self.prepare()
            peer = PatientPeer(
                self.settings.ice_servers,
                on_video=lambda slot: self.start_stream(peer, slot),
                on_closed=lambda: self._on_closed(peer),
            )
            answer = await peer.answer(offer)
            self.peer = peer
            self.health.connections += 1
            self.alert = None
            self.status = "live"
            self.store.set_status(self.id, "live")
            self.spawn(self._watch_connection(peer))
            self.publisher.notify()
            return answer

    async def prepare(self) -> None:
        """Build the session's pipeline unless it has one (in the model threads: the first loads weights,
        or starts the analysis processes)."""
        if self.analysis.analyser is None:
            loop = asyncio.get_running_loop()
            analyser = await loop.run_in_executor(self.models.executor, self.models.new_analyser, self.id)
            self.store.set_estimator(self.id, self.analysis.attach(analyser).to_json())

    async def _watch_connection(self, peer: PatientPeer) -> None:
        """Close an answered peer that does not connect in time (the client vanished, or DTLS failed)."""
        try:
            await asyncio.wait_for(peer.connected.wait(), self.settings.connect_timeout_s)
        except TimeoutError:
            log.info(
                "session %s: the patient's connection did not come up within %g s; closed",
                self.id,
                self.settings.connect_timeout_s,
            )
            await peer.close()

    def _on_closed(self, peer: PatientPeer) -> None:
        if self.peer is peer:
            self.peer = None
        if self._loops_done.is_set() and self.status == "live":
            # Closed before any video arrived: nothing was streamed, the patient may try again.
            self.status = "waiting"
            self.store_quietly(self.store.set_status, self.id, "waiting")
        self.publisher.notify()

    def start_stream(self, peer: PatientPeer, slot: LatestFrame[ReceivedFrame]) -> None:
        """Analyse the frames ``peer`` puts into ``slot`` (called when its video track arrives)."""
        self._loops_done.clear()
        self._loops = StreamLoops(self, peer, slot)
        self._loops.start()
        self.publisher.ensure_running(lambda: self.idle)

    def loops_ended(self, loops: StreamLoops) -> None:
        """Called by ``loops`` once its stream has ended and its record is stored."""
        if self._loops is loops:
            self._loops = None
        self._loops_done.set()
        self.publisher.notify()

    async def disconnect(self) -> None:
        """Close the patient's connection and wait (boundedly) for the loops to store what they have."""
        if self.peer is not None:
            peer, self.peer = self.peer, None
            await peer.close()
        try:
            await asyncio.wait_for(self._loops_done.wait(), ENDING_TIMEOUT_S)
        except TimeoutError:
            log.warning("session %s: analysis did not finish within %g s of the hang-up", self.id, ENDING_TIMEOUT_S)

    async def hang_up(self) -> None:
        """The patient ends the session: its patient link stops working."""
        async with self._signalling:
            await self.disconnect()
            self.close_open_segment()
            self.status = "ended"
            self.store_quietly(self.store.set_status, self.id, "ended")
            self.publisher.notify()

    def reopen(self) -> None:
        """An admin action: an ended session takes its patient link again (a second sitting)."""
        if self.status == "ended" and self.peer is None:
            self.status, self.alert = "waiting", None
            self.store.set_status(self.id, "waiting")
            self.publisher.notify()

    async def close(self) -> None:
        if not self.idle:
            await self.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.close()
        if self.analysis.analyser is not None:  # frees its pipeline in an analysis process
            await asyncio.get_running_loop().run_in_executor(self.models.executor, self.analysis.analyser.close)

    # -- alerts and storage ----------------------------------------------------------------------
    def set_alert(self, code: AlertCode, message: str) -> None:
        if self.alert is None or self.alert.code != code:
            self.alert = Alert(code, message)
            self.publisher.notify()

    def store_quietly(self, write: Callable[..., object], *args: object) -> bool:
        """A write on the way out: a failure is shown and logged once, never raised."""
        try:
            write(*args)
            return True
        except StorageError as exc:
            if self.alert is None or self.alert.code != "storage":
                log.error("session %s: %s", self.id, exc)
            self.set_alert("storage", f"analysis stopped: the database cannot be written ({exc.__cause__ or exc})")
            return False

    def _shown(self, trace: KeyframeTrace) -> None:
        """Model thread: a keyframe is stored and in the statistics; the next snapshot shows it."""
        self.health.keyframes += 1
        trace.analyze_end = time.perf_counter()
        self.latency.shown(trace)

    def finish(self) -> None:
        """Model thread, at the end of a stream: the stored record complete (``Recorder.finish``)."""
        self.recorder.finish()
        analyser = self.analysis.analyser
        if analyser is not None:
            log.info(
                "session %s pipeline stages (ms): %s",
                self.id,
                json.dumps({k: {m: round(x, 2) for m, x in v.items()} for k, v in analyser.stage_times().items()}),
            )

    def counts(self) -> dict[str, int]:
        """The frame counts stored with the session: the pipeline's and the stream's, over every run."""
        return {**self.analysis.pipeline_counts(), **self.health.counts()}

    # -- exercises -------------------------------------------------------------------------------
    def start_exercise(self, key: str) -> Segment:
        """Begin exercise ``key`` now (raises ``ExerciseError`` for a key outside the protocol)."""
        closed, segment = self.analysis.start_exercise(key, self.session_time())
        if closed is not None:
            self._end_segment(closed)
        self.store.start_segment(self.id, segment)
        self.publisher.notify()
        return segment

    def stop_exercise(self) -> Segment | None:
        closed = self.analysis.stop_exercise(self.session_time())
        if closed is not None:
            self._end_segment(closed)
        self.publisher.notify()
        return closed

    def _end_segment(self, segment: Segment) -> None:
        assert segment.end_s is not None
        self.store.end_segment(self.id, segment.segment_id, segment.end_s)

    def close_open_segment(self) -> None:
        """At the end of a stream the running exercise ends with the last frame that came in."""
        closed = self.analysis.stop_exercise(
            self.last_frame_s if self.last_frame_s is not None else self.session_time()
        )
        if closed is not None:
            assert closed.end_s is not None
            self.store_quietly(self.store.end_segment, self.id, closed.segment_id, closed.end_s)

    # -- findings --------------------------------------------------------------------------------
    def schedule_findings(self) -> None:
        """After a keyframe: findings that are due, as their own job, so the keyframe is shown without waiting."""
        if (self._findings_job is None or self._findings_job.done()) and self.analysis.findings_due():
            self._findings_job = self.spawn(self._run_findings())

    async def _run_findings(self) -> None:
        loop = asyncio.get_running_loop()
        # Ingest priority: a keyframe's analysis (this or another session's) goes first.
        await loop.run_in_executor(self.models.ingest_executor, self.analysis.update_findings)
        self.publisher.notify()

    async def _load_findings(self) -> None:
        """A reopened session's findings, computed off the event loop, then shown."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.models.analysis_executor, self.analysis.update_findings, True)
        self.publisher.publish_now()

    # -- dashboards ------------------------------------------------------------------------------
    def statistics(self, scope: str) -> JSONObject | None:
        """Dashboard statistics of ``session`` or ``segment:<id>``, matrices included."""
        return self.analysis.statistics(scope)

    def snapshot(self) -> LiveSnapshot:
        if self._loops is not None:
            self._loops.count_received()
        fps, kps = (
            self._rates.rates(self.health.frames_received, self.health.keyframes)
            if self.peer is not None
            else (None, None)
        )
        return LiveSnapshot(
            session=self.id,
            status=self.status,
            live=self.peer is not None,
            alert=self.alert,
            sent_at=time.time(),
            session_time_s=self.session_time(),
            analysis=self.analysis.snapshot(),
            health=StreamHealth(
                dataclasses.replace(self.health), fps, kps, self.latency.summary(), len(self.hub), self.hub.dropped()
            ),
        )
