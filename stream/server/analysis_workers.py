"""Analysis in worker processes (``serve --analysis-processes N``): each session's pipeline in one of N
processes, so sessions do not share one interpreter lock.

Detection, tracking and much of the per-frame work hold the GIL: in one process, three sessions at
30 fps on two cores skipped 92 % of their frames. Here each session's ``Pipeline`` lives in the
least-loaded worker process (``analysis_process.py``) and the server keeps the WebRTC peers, the
latest-frame slots, the statistics, the store and the dashboards. ``RemoteAnalyser`` is the
session's ``FrameAnalyser``: it copies each frame into the session's shared-memory slot
(``frame_slots.py``) and sends the worker a small message (``analysis_protocol.py``); the worker
replies with the frame's result and, for a keyframe, its AU estimate, which ``estimate`` hands
over when the analysis loop gets to that keyframe.

Calls block the calling thread (a model thread, never the event loop) until the worker answers;
each worker answers one request at a time. Workers are started with the *spawn* method (the server
has threads and an event loop, which fork would copy half-way), one at a time as sessions need them:
a new one only when every running worker has a session. A worker that dies is noticed by the next
call to it: the session's analysis moves to a fresh worker (``AnalysisRestarted``, shown on the
dashboard) and goes on; after ``MAX_RESTARTS`` the session's analysis stops with the reason
(``AnalysisWorkerError``). ``close`` stops every worker, waits for it and reaps it; a worker whose
server vanished exits by itself (its pipe closes).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import NoReturn, TypeVar

from stream.config import AnalysisConfig
from stream.errors import AnalysisRestarted, AnalysisWorkerDied, AnalysisWorkerError
from stream.pipeline import FrameResult
from stream.server import analysis_process
from stream.server.analysis_protocol import (
    AnalyseFrame,
    ClosePipeline,
    Controls,
    Done,
    Failed,
    FrameAnalysed,
    GetStageTimes,
    Opened,
    OpenPipeline,
    Ready,
    Reply,
    Request,
    StageTimesAnswer,
    Stop,
)
from stream.server.frame_slots import FrameSlot
from stream.session.analyser import StageTimes
from stream.session.snapshot import EstimatorInfo
from stream.types import AUEstimate, Frame, KeyframeStamp

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # per session: a frame that kills every worker it reaches must not kill them forever
STOP_WAIT_S = 5.0  # a worker asked to stop gets this long before it is terminated, then killed
# A worker that has not answered one request (or loaded its detector) within this long is taken
# for hung and killed: its sessions move on. A frame takes ~15 ms, a 4K detection a few seconds.
ANSWER_TIMEOUT_S = 60.0
HELD_ESTIMATES = 32  # estimates of keyframes the keyframe queue dropped are given up beyond this

R = TypeVar("R", bound=Reply)


def exit_reason(exitcode: int | None) -> str:
    """How a process ended, in words: "killed by SIGKILL", "exited with status 1"."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class Worker:
    """One worker process and its pipe; ``call`` is one request and its reply, one caller at a time."""

    def __init__(
        self, index: int, config: AnalysisConfig, mirrored: bool, answer_timeout_s: float = ANSWER_TIMEOUT_S
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.index = index
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=analysis_process.serve,
            args=(child, config, mirrored),
            name=f"stream-analysis-{index}",
            daemon=True,  # never outlives the server, even one that does not reach close()
        )
        self.process.start()
        child.close()  # the worker's end: the worker alone holds it, so its death closes the pipe
        self.sessions = 0  # pipelines assigned (the least-loaded worker gets the next)
        self.lock = threading.Lock()
        self.failure: str | None = None  # why it can take no more requests
        self._ready = False
        self._hung = False
        self.answer_timeout_s = answer_timeout_s

    @property
    def name(self) -> str:
        return f"analysis worker {self.index} (pid {self.process.pid})"

    def usable(self) -> bool:
        return self.failure is None and self.process.is_alive()  # is_alive reaps an exited process

    def call(self, request: Request, answer: type[R]) -> R:
        """Send ``request``, wait for its reply of type ``answer`` (``AnalysisWorkerDied`` if the worker died)."""
        with self.lock:
            if self.failure is not None:
                raise AnalysisWorkerDied(self.failure)
            try:
                if not self._ready:  # the first call waits for the detector to load
                    self._check(self._receive(), Ready)
                    self._ready = True
                self.conn.send(request)
                reply = self._receive()
            except (EOFError, OSError):
                self.process.join(STOP_WAIT_S)
                reason = (
                    f"did not answer within {self.answer_timeout_s:g} s and was killed"
                    if self._hung
                    else exit_reason(self.process.exitcode)
                )
                self.failure = f"{self.name} {reason}"
                log.error("%s; its sessions move to a new worker", self.failure)
                raise AnalysisWorkerDied(self.failure) from None
        return self._check(reply, answer)

    def _receive(self) -> Reply:
        if not self.conn.poll(self.answer_timeout_s):
            self._hung = True
            self.process.kill()  # the pipe closes: reported as its death below
        reply: Reply = self.conn.recv()
        return reply

    def _check(self, reply: Reply, answer: type[R]) -> R:
        if isinstance(reply, Failed):
            if not self._ready:  # the worker could not start (weights missing, ...) and has exited
                self.failure = f"{self.name} could not start: {reply.error}"
                raise AnalysisWorkerError(self.failure)
            log.error("%s failed: %s", self.name, reply.details)
            raise AnalysisWorkerError(f"{self.name}: {reply.error}")
        if not isinstance(reply, answer):
            raise AnalysisWorkerError(f"{self.name} answered {type(reply).__name__}, expected {answer.__name__}")
        return reply

    def stop(self) -> None:
        """Ask the worker to exit; terminate it, then kill it, if it does not; reap it."""
        if self.lock.acquire(timeout=1.0):  # a caller stuck on a hung worker: go straight to terminate
            try:
                if self.process.is_alive():
                    self.conn.send(Stop())
            except OSError:
                pass
            finally:
                self.lock.release()
        self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            log.warning("%s did not stop within %g s; terminated", self.name, STOP_WAIT_S)
            self.process.terminate()
            self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class AnalysisWorkers:
    """The pool of ``count`` worker processes the sessions' pipelines are spread over."""

    def __init__(
        self, count: int, config: AnalysisConfig, mirrored: bool, answer_timeout_s: float = ANSWER_TIMEOUT_S
    ) -> None:
        if count < 1:
            raise ValueError(f"need at least one analysis process, got {count}")
        self.count = count
        self.config = config
        self.mirrored = mirrored
        self.answer_timeout_s = answer_timeout_s
        self.workers: list[Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def open(self, name: str) -> RemoteAnalyser:
        """A pipeline for session ``name`` on the least-loaded worker (blocks while workers start)."""
        return RemoteAnalyser(self, name)

    def assign(self) -> Worker:
        """The least-loaded usable worker, counted as one session busier; dead ones are replaced first.

        Workers start as sessions need them, up to ``count``: a new one only when every running worker
        has a session, so a many-core machine does not start (and hold the memory of) a worker per core
        for its first patient.
        """
        with self._lock:
            if self._closed:
                raise AnalysisWorkerError("the server is shutting down: no analysis workers")
            for i, running in enumerate(self.workers):
                if not running.usable():
                    running.stop()  # reaps it
                    self.workers[i] = self._start(i)
            if len(self.workers) < self.count and all(w.sessions > 0 for w in self.workers):
                self.workers.append(self._start(len(self.workers)))
            worker = min(self.workers, key=lambda w: w.sessions)
            worker.sessions += 1
            return worker

    def _start(self, index: int) -> Worker:
        return Worker(index, self.config, self.mirrored, self.answer_timeout_s)

    def release(self, worker: Worker) -> None:
        with self._lock:
            worker.sessions -= 1

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self.workers if w.process.pid is not None]

    def close(self) -> None:
        """Stop every worker and reap it (call once the sessions are closed)."""
        with self._lock:
            self._closed = True
            workers, self.workers = self.workers, []
        for worker in workers:
            worker.stop()


_pipeline_numbers = itertools.count()


class RemoteAnalyser:
    """A session's pipeline in a worker process: the ``FrameAnalyser`` the server's session drives."""

    def __init__(self, workers: AnalysisWorkers, name: str) -> None:
        self.workers = workers
        self.name = name
        self._slot = FrameSlot()
        self._lock = threading.Lock()  # the control calls and estimates come from other threads
        self._controls = Controls()
        self._estimates: dict[int, AUEstimate] = {}  # frame index -> estimate, in keyframe order
        self._counts: dict[str, int] = {}
        self._counts_before: dict[str, int] = {}  # of pipelines on workers that died
        self._closed = False
        self._restarts = 0
        self._work: tuple[float, float] | None = None
        self.worker, self._pipeline, self._estimator = self._open()

    def _open(self) -> tuple[Worker, str, EstimatorInfo]:
        worker = self.workers.assign()
        pipeline = f"{self.name}/{next(_pipeline_numbers)}"
        try:
            opened = worker.call(OpenPipeline(pipeline), Opened)
        except BaseException:
            self.workers.release(worker)
            raise
        return worker, pipeline, opened.estimator

    @property
    def estimator(self) -> EstimatorInfo:
        return self._estimator

    def ingest(self, frame: Frame) -> FrameResult[KeyframeStamp]:
        slot, shape = self._slot.write(frame.image)
        with self._lock:
            controls, self._controls = self._controls, Controls()
        request = AnalyseFrame(self._pipeline, slot, shape, frame.index, frame.time_s, controls)
        try:
            reply = self.worker.call(request, FrameAnalysed)
        except AnalysisWorkerDied as exc:
            self._restart(exc)
        self._counts = reply.counts
        self._work = (reply.started, reply.finished)
        if reply.estimate is not None:
            with self._lock:
                self._estimates[reply.estimate.frame_index] = reply.estimate
                while len(self._estimates) > HELD_ESTIMATES:
                    del self._estimates[next(iter(self._estimates))]
        return reply.result

    def _restart(self, died: AnalysisWorkerDied) -> NoReturn:
        """The worker died: the pipeline again on a fresh worker, then ``AnalysisRestarted`` (always raises)."""
        for key, value in self._counts.items():
            self._counts_before[key] = self._counts_before.get(key, 0) + value
        self._counts = {}
        self.workers.release(self.worker)
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            raise AnalysisWorkerError(
                f"{died}; the analysis of this session stops: its worker died {self._restarts} times "
                "(see the server log)"
            )
        self.worker, self._pipeline, _ = self._open()
        raise AnalysisRestarted(
            f"{died}; analysis restarted on a new worker process: tracking and the AU reference start afresh"
        )

    def estimate(self, keyframe: KeyframeStamp) -> AUEstimate:
        with self._lock:
            for index in [i for i in self._estimates if i < keyframe.frame_index]:
                del self._estimates[index]  # keyframes the keyframe queue dropped
            estimate = self._estimates.pop(keyframe.frame_index, None)
        if estimate is None:
            raise AnalysisWorkerError(
                f"session {self.name}: no AU estimate of keyframe {keyframe.frame_index} "
                "(keyframes must be estimated in the order ingest found them)"
            )
        return estimate

    def _control(self, controls: Controls) -> None:
        with self._lock:
            self._controls = self._controls | controls

    def rereference(self) -> None:
        self._control(Controls(rereference=True))

    def retrack(self) -> None:
        self._control(Controls(retrack=True))

    def restart_tracking(self) -> None:
        self._control(Controls(rereference=True, restart_tracking=True))

    def last_work(self) -> tuple[float, float] | None:
        return self._work

    def counts(self) -> dict[str, int]:
        counts = dict(self._counts_before)
        for key, value in self._counts.items():
            counts[key] = counts.get(key, 0) + value
        return counts

    def stage_times(self) -> StageTimes:
        try:
            return self.worker.call(GetStageTimes(self._pipeline), StageTimesAnswer).times
        except AnalysisWorkerError as exc:
            log.info("session %s: no stage times: %s", self.name, exc)
            return {}

    def close(self) -> None:
        """Free the pipeline in its worker and the session's frame slot."""
        if self._closed:
            return
        self._closed = True
        try:
            self.worker.call(ClosePipeline(self._pipeline), Done)
        except AnalysisWorkerError:
            pass  # a dead worker holds nothing
        finally:
            self.workers.release(self.worker)
            self._slot.close()
