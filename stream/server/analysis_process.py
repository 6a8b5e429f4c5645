"""Inside an analysis worker process: the pipelines of the sessions assigned to it, one request at a time.

The worker loads the face detector once and shares it among its sessions' pipelines (each has its
own tracker, keyframe filter and AU estimator, as in the in-process server). It serves requests
from the server in order until ``Stop`` or until the server's end of the pipe closes (the server
exited, however it exited), so a worker never outlives its server. It runs single-threaded: the
worker processes are the parallelism, more threads would only contend for the same cores. It also
runs at a lower priority (``NICENESS``) than the server: when the cores are short, the analysis is
what can give way (the latest frame wins, stale ones are skipped), while the server's receiving end
cannot (aiortc queues decoded frames without bound until the event loop takes them).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from stream.config import AnalysisConfig
from stream.pipeline import FrameResult, Pipeline
from stream.server.analysis_protocol import (
    AnalyseFrame,
    ClosePipeline,
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
from stream.server.frame_slots import SlotReader
from stream.session.snapshot import EstimatorInfo
from stream.types import Frame, KeyframeStamp

log = logging.getLogger(__name__)

NICENESS = 5  # added to the server's: under CPU contention a worker gets about a third of a server thread's share


@dataclass
class _Hosted:
    pipeline: Pipeline
    slot: SlotReader = field(default_factory=SlotReader)


class WorkerHost:
    """The pipelines one worker runs, by name; ``handle`` answers one request."""

    def __init__(self, config: AnalysisConfig, mirrored: bool) -> None:
        from stream.face.detect import build_detector
        from stream.symptoms.normal import load_normal_cooccurrence

        self.config = config.validate()
        self.mirrored = mirrored
        self.detector = build_detector(config.detector, weights=config.weights, device=config.device)
        self.normal = load_normal_cooccurrence(config.normal_cooccurrence)
        self.pipelines: dict[str, _Hosted] = {}

    def handle(self, request: Request) -> Reply:
        if isinstance(request, AnalyseFrame):
            return self._analyse(request)
        if isinstance(request, OpenPipeline):
            # The series lives in the server's store: the pipeline keeps no per-keyframe history.
            pipeline = Pipeline(
                self.config, detector=self.detector, mirrored=self.mirrored, keep_series=False, normal=self.normal
            )
            self.pipelines[request.pipeline] = _Hosted(pipeline)
            return Opened(EstimatorInfo.of(pipeline.estimator))
        if isinstance(request, GetStageTimes):
            return StageTimesAnswer(self._hosted(request.pipeline).pipeline.timer.summary())
        if isinstance(request, ClosePipeline):
            hosted = self.pipelines.pop(request.pipeline, None)
            if hosted is not None:
                hosted.slot.close()
            return Done()
        raise TypeError(f"an analysis worker cannot answer {type(request).__name__}")

    def _hosted(self, name: str) -> _Hosted:
        try:
            return self.pipelines[name]
        except KeyError:
            raise KeyError(f"no pipeline {name!r} in this worker (opened on another, or closed)") from None

    def _analyse(self, request: AnalyseFrame) -> FrameAnalysed:
        started = time.perf_counter()
        hosted = self._hosted(request.pipeline)
        pipeline, controls = hosted.pipeline, request.controls
        if controls.restart_tracking:
            pipeline.restart_tracking()
        elif controls.retrack:
            pipeline.retrack()
        if controls.rereference:
            pipeline.rereference()
        image = hosted.slot.read(request.slot, request.shape)
        result = pipeline.ingest(Frame(request.frame_index, request.time_s, image))
        keyframe = result.keyframe
        estimate, stamp = None, None
        if keyframe is not None:
            # Estimated here, at once: the aligned halves never leave the worker, and the keyframe does
            # not wait for a second trip through the server.
            estimate = pipeline.estimate(keyframe)
            stamp = KeyframeStamp(keyframe.frame_index, keyframe.time_s)
        return FrameAnalysed(
            FrameResult(result.frame_index, result.time_s, result.n_faces, stamp, result.difference),
            estimate,
            pipeline.counts.as_dict(),
            started,
            time.perf_counter(),
        )

    def close(self) -> None:
        for hosted in self.pipelines.values():
            hosted.slot.close()
        self.pipelines.clear()


def _one_thread_each() -> None:
    """Workers are the parallelism: their libraries get one thread each instead of one per core each."""
    import cv2

    os.environ["OMP_NUM_THREADS"] = "1"  # torch reads it when first imported (a DEM estimator, later)
    cv2.setNumThreads(1)
    torch = sys.modules.get("torch")  # only when the detector imported it already
    if torch is not None:
        torch.set_num_threads(1)


def serve(conn: Connection, config: AnalysisConfig, mirrored: bool) -> None:
    """The worker process's main function (started with the spawn method by ``analysis_workers.py``)."""
    # Ctrl-C reaches the whole process group; the server decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:  # not allowed here: same priority as the server
        pass
    try:
        _one_thread_each()
        host = WorkerHost(config, mirrored)
    except Exception as exc:  # noqa: BLE001 - reported to the server, which refuses the session with it
        conn.send(Failed.of(exc))
        return
    conn.send(Ready(os.getpid()))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                break  # the server is gone
            if isinstance(request, Stop):
                break
            try:
                reply = host.handle(request)
            except Exception as exc:  # noqa: BLE001 - one session's failure, told to its proxy
                reply = Failed.of(exc)
            try:
                conn.send(reply)
            except OSError:
                break  # the server is gone (killed while this frame was analysed)
    finally:
        host.close()
        conn.close()
