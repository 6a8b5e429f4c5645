"""WebRTC ingest: the patient's peer connection, the latest-frame pump and the bounded keyframe queue.

aiortc decodes every received frame into an *unbounded* queue per track, so one task drains it as
fast as frames arrive and keeps only the newest (``LatestFrame``); the models take whatever is newest
when they are free, and every frame overwritten unseen is counted as a stale drop. Keyframes reach
the AU estimator through ``KeyframeQueue``, bounded, dropping the oldest waiting keyframe when full.

Signalling is one HTTP exchange (offer in, answer out): aiortc gathers all its candidates before it
answers, so there is no trickle ICE. With no ICE servers configured the peers use host candidates
only, which is what a closed clinic network needs (and no 5 s wait on an unreachable STUN server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from stream.server.settings import IceServer

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SDP_CHARS = 32 * 1024


class SignallingError(Exception):
    """An offer the server cannot take; ``status`` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ReceivedFrame:
    frame: av.VideoFrame  # still in the decoder's pixel format
    received_at: float  # wall clock (time.time) when the pump took it off the track
    received_mono: float  # time.perf_counter at the same moment, for latencies

    def rgb(self, reformatter: VideoReformatter | None = None) -> np.ndarray:
        """The frame as H x W x 3 uint8 RGB (a conversion worth a model thread, not the event loop).

        ``reformatter``: one the session reuses frame after frame, from one thread at a time, converting
        in the calling thread. Without it PyAV makes a scaler for each frame, and libswscale starts a
        thread per core for each scaler and stops them when the frame is freed (34 threads a second
        with 3 sessions on 2 cores, 0.5 ms more CPU per frame); the pixels are the same.
        """
        if reformatter is None:
            return self.frame.to_ndarray(format="rgb24")
        return reformatter.reformat(self.frame, format="rgb24", threads=1).to_ndarray()


class LatestFrame(Generic[T]):
    """One slot holding the newest item; readers wait for anything newer than what they last saw."""

    def __init__(self) -> None:
        self.item: T | None = None
        self.seq = 0
        self.closed = False
        self._event = asyncio.Event()

    def put(self, item: T) -> None:
        self.item = item
        self.seq += 1
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def newer_than(self, seq: int) -> tuple[int, T | None]:
        """(seq, item) of the newest item after ``seq``; (seq, None) once closed and drained."""
        while self.seq == seq and not self.closed:
            self._event.clear()
            await self._event.wait()
        if self.seq == seq:
            return seq, None
        return self.seq, self.item


class KeyframeQueue(Generic[T]):
    """Bounded FIFO between the detector and the AU estimator.

    Policy when full: drop the *oldest* waiting keyframe (counted in ``dropped``). The newest one
    shows the face as it is now; the keyframe filter already thinned the stream to changes.
    """

    def __init__(self, size: int) -> None:
        self._items: deque[T] = deque()
        self.size = size
        self.dropped = 0
        self.closed = False
        self._event = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if len(self._items) >= self.size:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._event.set()

    def close(self) -> None:
        """No more keyframes; ``get`` returns None once the queue is empty."""
        self.closed = True
        self._event.set()

    async def get(self) -> T | None:
        while not self._items:
            if self.closed:
                return None
            self._event.clear()
            await self._event.wait()
        return self._items.popleft()


async def pump(track: MediaStreamTrack, slot: LatestFrame[ReceivedFrame]) -> None:
    """Keep aiortc's per-track queue empty: every frame goes into the slot, newest wins."""
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):  # a video track yields video frames; anything else is skipped
                slot.put(ReceivedFrame(frame, time.time(), time.perf_counter()))
    except MediaStreamError:
        pass
    finally:
        slot.close()


async def drain(track: MediaStreamTrack) -> None:
    """Consume a track we do not analyse (audio): unread tracks keep growing in memory."""
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


def rtc_configuration(ice_servers: Sequence[IceServer]) -> RTCConfiguration:
    # iceServers=[] explicitly: None would make aiortc add a public Google STUN server.
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers]
    )


def parse_offer(body: Any) -> RTCSessionDescription:
    """Check the shape of a signalling body before aiortc sees it."""
    if not isinstance(body, dict):
        raise SignallingError(400, 'expected a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise SignallingError(400, 'signalling type must be "offer"')
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SignallingError(400, "malformed SDP offer")
    if len(sdp) > MAX_SDP_CHARS:
        raise SignallingError(413, "SDP offer too large")
    lines = sdp.replace("\r\n", "\n")
    if "\nm=video " not in lines:
        raise SignallingError(422, "the offer has no video track")
    if "\na=fingerprint:" not in lines:
        # aiortc would answer, then fail in a background task: refuse it here, visibly.
        raise SignallingError(400, "the offer has no DTLS fingerprint (a=fingerprint)")
    return RTCSessionDescription(sdp=sdp, type="offer")


class PatientPeer:
    """The server end of one patient's WebRTC connection: receives video only.

    ``on_video(slot)`` is called once with the latest-frame slot of the incoming video track;
    ``on_closed()`` when the connection fails or closes (a dropped patient).
    """

    def __init__(
        self,
        ice_servers: Sequence[IceServer],
        on_video: Callable[[LatestFrame[ReceivedFrame]], None],
        on_closed: Callable[[], None],
    ) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_closed = on_closed
        self._closed = False
        self.connected = asyncio.Event()  # set once ICE and DTLS are up
        self.slot: LatestFrame[ReceivedFrame] | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and self.slot is None:
                self.slot = LatestFrame()
                self._spawn(pump(track, self.slot))
                on_video(self.slot)
            else:
                self._spawn(drain(track))

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def state(self) -> str:
        return self.pc.connectionState

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        try:
            await self.pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError, OperationError, KeyError... on bad SDP
            await self.close()
            if "codec" in str(exc).lower() or "parameters" in str(exc).lower():
                raise SignallingError(422, "no video codec in the offer that the server decodes (VP8, H264)") from exc
            raise SignallingError(400, "malformed SDP offer") from exc
        video = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        if not video or not getattr(video[0], "_codecs", None):
            await self.close()
            raise SignallingError(422, "no video codec in the offer that the server decodes (VP8, H264)")
        for t in self.pc.getTransceivers():
            t.direction = "recvonly"  # the patient gets nothing back
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        if self.slot is not None:
            self.slot.close()
        self._on_closed()
