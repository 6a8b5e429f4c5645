"""Analysis in worker processes (stream/server/analysis_workers.py) on real frames, without the server.

A session's pipeline in a real spawned worker process gives the same frame results and AU values as
the same pipeline in this process; a worker killed (or hung) mid-session is replaced and the session
goes on; closing the pool leaves no process behind.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from test_server_support import load_face_frames

from stream.config import AnalysisConfig
from stream.errors import AnalysisRestarted
from stream.pipeline import Pipeline
from stream.server.analysis_workers import AnalysisWorkers, exit_reason
from stream.server.frame_slots import FrameSlot, SlotReader
from stream.session.analyser import FrameAnalyser, LocalAnalyser
from stream.types import AUEstimate, Frame


@pytest.fixture(scope="module")
def frames(shared_data) -> list[np.ndarray]:
    """RGB frames (640x480) of the first ~4 s of a real face whose expression changes quickly."""
    return load_face_frames(shared_data / "d9.mp4", every=2, limit=60, size=(640, 480), pixel_format="rgb24")


def run(analyser: FrameAnalyser, frames: list[np.ndarray], start: int = 0) -> list[tuple[int, AUEstimate | None]]:
    """What the server's loops do: ingest each frame, estimate each keyframe; (n_faces, estimate) per frame."""
    out = []
    for i, image in enumerate(frames, start):
        result = analyser.ingest(Frame(i, i / 15, image))
        estimate = analyser.estimate(result.keyframe) if result.keyframe is not None else None
        out.append((result.n_faces, estimate))
    return out


@pytest.mark.slow  # real frames through MTCNN and the flow estimator, in two processes
def test_a_worker_process_analyses_like_this_process(frames):
    config = AnalysisConfig()
    local = run(LocalAnalyser(Pipeline(config, keep_series=False)), frames)
    workers = AnalysisWorkers(1, config, mirrored=False)
    try:
        remote_analyser = workers.open("s1")
        remote = run(remote_analyser, frames)
        counts = remote_analyser.counts()
        assert remote_analyser.stage_times()["detect"]["n"] == len(frames)
        remote_analyser.close()
    finally:
        workers.close()
    assert [n for n, _ in remote] == [n for n, _ in local]
    estimated = [(a, b) for (_, a), (_, b) in zip(local, remote) if a is not None or b is not None]
    assert len(estimated) >= 5
    for a, b in estimated:
        assert a is not None and b is not None and a.frame_index == b.frame_index
        np.testing.assert_array_equal(a.left, b.left)
        np.testing.assert_array_equal(a.right, b.right)
        np.testing.assert_array_equal(a.movement, b.movement)
    assert counts["frames"] == len(frames) and counts["keyframes"] == len(estimated)


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_session_goes_on(frames):
    workers = AnalysisWorkers(2, AnalysisConfig(), mirrored=False)
    try:
        first, second = workers.open("s1"), workers.open("s2")
        assert first.worker is not second.worker  # least-loaded: one session each
        run(first, frames[:10])
        run(second, frames[:10])
        victim = first.worker.process
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(AnalysisRestarted, match="killed by SIGKILL.*restarted on a new worker"):
            first.ingest(Frame(10, 10 / 15, frames[10]))
        assert not victim.is_alive() and victim.exitcode == -signal.SIGKILL  # reaped, no zombie
        assert first.worker.process.pid != victim.pid
        after = run(first, frames[11:], start=11)
        assert sum(e is not None for _, e in after) >= 1  # a new reference, then AU values again
        assert first.counts()["frames"] == 10 + len(after)  # the dead worker's frames are kept
        run(second, frames[10:20], start=10)  # the other worker never noticed
        pids = workers.pids()
        first.close()
        second.close()
    finally:
        workers.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # stopped and reaped
            os.kill(pid, 0)


@pytest.mark.slow
def test_a_hung_worker_is_killed_and_replaced(frames):
    workers = AnalysisWorkers(1, AnalysisConfig(), mirrored=False)
    try:
        analyser = workers.open("s1")
        run(analyser, frames[:3])
        hung = analyser.worker
        hung.answer_timeout_s = 2.0  # instead of a minute: ready and answering, now it will not
        os.kill(hung.process.pid, signal.SIGSTOP)
        with pytest.raises(AnalysisRestarted, match="did not answer within 2 s and was killed"):
            analyser.ingest(Frame(3, 3 / 15, frames[3]))
        assert not hung.process.is_alive()
        run(analyser, frames[4:8], start=4)
        assert analyser.counts()["frames"] == 7
        analyser.close()
    finally:
        workers.close()


def test_a_frame_slot_carries_frames_of_any_size_and_refuses_other_arrays():
    rng = np.random.default_rng(0)
    slot, reader = FrameSlot(), SlotReader()
    try:
        small = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        name, shape = slot.write(small)
        np.testing.assert_array_equal(reader.read(name, shape), small)
        large = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # the sender changed resolution
        name2, shape2 = slot.write(large)
        assert name2 != name and shape2 == (480, 640, 3)
        copy = reader.read(name2, shape2)
        np.testing.assert_array_equal(copy, large)
        slot.write(small)  # the next frame overwrites the slot, not a frame already read
        np.testing.assert_array_equal(copy, large)
        with pytest.raises(ValueError, match="H x W x 3 uint8"):
            slot.write(np.zeros((4, 4), dtype=np.float32))
    finally:
        reader.close()
        slot.close()


def test_serve_takes_the_number_of_analysis_processes():
    import argparse

    from stream.errors import ConfigError
    from stream.server.main import add_serve_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    default = settings_from_args(parser.parse_args([]))
    assert default.analysis_processes is None and default.analysis_process_count == 2 * (os.cpu_count() or 1)
    assert default.model_threads == default.model_workers + 2 * default.analysis_process_count
    threads = settings_from_args(parser.parse_args(["--analysis-processes", "0"]))
    assert threads.analysis_process_count == 0 and threads.model_threads == threads.model_workers
    with pytest.raises(ConfigError, match="analysis processes must be >= 0"):
        settings_from_args(parser.parse_args(["--analysis-processes", "-1"]))


def test_exit_reasons_read_as_words():
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(1) == "exited with status 1"
    assert exit_reason(None) == "stopped answering"
