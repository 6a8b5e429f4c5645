"""Helpers for the server tests (no tests here): a real uvicorn on a free port, in a thread or in
its own process, a Python WebRTC patient that streams a real face video, and a session factory."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"  # the server refuses keys under 32 characters


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_non_loopback_interface() -> bool:
    import aioice.ice

    return bool(aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False))


def allow_loopback_ice() -> None:
    """ICE host candidates are 127.0.0.1 only, whatever interfaces exist: no test traffic leaves loopback.

    aioice never offers 127.0.0.1 by itself; every process that runs an aiortc peer calls this.
    """
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]


class ThreadServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, app: Any, certfile: str | None = None, keyfile: str | None = None) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"{'https' if certfile else 'http'}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                ws_max_size=1 << 20,
                ssl_certfile=certfile,
                ssl_keyfile=keyfile,
            )
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` (a coroutine function or a plain one) on the server's loop and wait."""
        assert self.loop is not None

        async def go() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout=30)


_LAUNCHER = """
import sys, aioice.ice
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]  # loopback only
import argparse
from stream.server.main import add_serve_arguments, run_serve
parser = argparse.ArgumentParser()
add_serve_arguments(parser)
sys.exit(run_serve(parser.parse_args(sys.argv[1:])))
"""


class ProcessServer:
    """``serve`` in its own process, so a test can stop and restart it on the same database."""

    launcher = _LAUNCHER  # Python run with ``-c``, then the serve flags; ICE forced onto 127.0.0.1

    def __init__(
        self, db: Path, log: Path, extra_args: tuple[str, ...] = (), admin_key: str | None = ADMIN_KEY
    ) -> None:
        self.db, self.log = db, log
        self.admin_key = admin_key  # None: the server generates and prints one
        self.extra_args = tuple(extra_args)  # more ``serve`` flags (benchmarks)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessServer:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    self.launcher,
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db),
                    *(["--admin-key", self.admin_key] if self.admin_key else []),
                    "--model-workers",
                    "2",
                    *self.extra_args,
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # bounds against a hang only: the start takes about 5 s (imports), more on a busy machine or a cold disk
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + "/", timeout=10).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


def create_session(url: str, label: str = "") -> dict[str, Any]:
    r = httpx.post(url + "/api/sessions", json={"label": label}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 201, r.text
    return r.json()


def load_face_frames(
    path: Path, every: int = 4, limit: int = 150, size: tuple[int, int] | None = None, pixel_format: str = "yuv420p"
) -> list[Any]:
    """Every ``every``-th frame as an array (yuv420p planes, or ``pixel_format`` such as "rgb24"):
    a real face whose expression changes quickly.

    ``size`` (width, height) rescales them, e.g. to what a sender under pressure drops to.
    """
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                if size is not None:
                    frame = frame.reformat(width=size[0], height=size[1])
                frames.append(frame.to_ndarray(format=pixel_format))
            if len(frames) >= limit:
                break
    return frames


def looping_track(frames: list[Any]) -> Any:
    """A 30 fps camera looping ``frames``; ``switch(frames)`` changes the picture (and its size),
    ``pause()`` stops sending while the connection stays up (a frozen camera or app)."""
    import av
    from aiortc import VideoStreamTrack

    class LoopingTrack(VideoStreamTrack):
        # MediaPlayer(loop=True) does not loop with av 18 (EOFError); pace and loop by hand.
        def __init__(self) -> None:
            super().__init__()
            self._frames = itertools.cycle(frames)
            self._running = asyncio.Event()
            self._running.set()

        def switch(self, new_frames: list[Any]) -> None:
            self._frames = itertools.cycle(new_frames)

        def pause(self) -> None:
            self._running.clear()

        async def recv(self) -> Any:
            await self._running.wait()
            pts, time_base = await self.next_timestamp()  # 30 fps pacing
            frame = av.VideoFrame.from_ndarray(next(self._frames), format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return LoopingTrack()


async def send_offer(url: str, session: dict[str, Any], track: Any) -> tuple[Any, httpx.Response]:
    """A Python WebRTC patient offers ``track`` over HTTP with the patient token: the connected peer and
    the server's answer, or None and the refusal (the peer closed)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(
            f"{url}/api/s/{session['session_id']}/offer",
            json={"sdp": pc.localDescription.sdp, "type": "offer"},
            headers={"Authorization": f"Bearer {session['patient_token']}"},
        )
    if r.status_code != 200:
        await pc.close()
        return None, r
    await pc.setRemoteDescription(RTCSessionDescription(**r.json()))
    return pc, r


async def connect_patient(url: str, session: dict[str, Any], frames: list[Any], track: Any = None) -> Any:
    """A Python WebRTC patient: offer over HTTP with the patient token, stream ``frames`` in a loop
    (or ``track``, a ``looping_track`` the test controls)."""
    pc, r = await send_offer(url, session, track or looping_track(frames))
    assert pc is not None, r.text
    return pc


async def next_snapshot(ws: Any, until: Any, fail: Any = None, timeout: float = 90.0) -> dict[str, Any]:
    """The first dashboard snapshot where ``until`` holds; one where ``fail`` holds raises at once."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if fail is not None and fail(message):
            raise AssertionError(f"unexpected snapshot: status {message['status']}, alert {message.get('alert')}")
        if until(message):
            return message


def ws_url(url: str, session: dict[str, Any], token: str | None = None) -> str:
    token = session["clinician_token"] if token is None else token
    return f"{url.replace('http', 'ws', 1)}/ws/s/{session['session_id']}?token={token}"
