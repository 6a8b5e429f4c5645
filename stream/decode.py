"""Video file source: decodes with PyAV into ``Frame`` objects (RGB, upright, with presentation times).

Handles the odd cases a clinic's files bring: rotation metadata (phone videos), variable frame rate
(times come from each frame's timestamp, not index / fps), audio-only files, non-video and corrupt
or truncated files (``VideoDecodeError`` naming the file and the problem).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import VideoDecodeError
from stream.types import Frame


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # average rate from the container (for ETA only; times come from timestamps)
    n_frames: int | None  # from the container header when known
    duration_s: float | None
    rotation: int  # degrees the stored picture is turned to display upright (0, 90, 180, 270)
    warnings: list[str] = field(default_factory=list)


def _rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    # PyAV's frame.rotation is the display-matrix angle, counter-clockwise in degrees.
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


class VideoFile:
    """Iterate a video file's frames. Use as a context manager or call ``close``."""

    def __init__(self, path: str | Path, max_side: int | None = None) -> None:
        """``max_side``: frames whose longer side is larger are scaled down to it (area averaging, in
        the decoder's colour conversion, so a 4K frame is never converted to RGB at full size)."""
        import av

        self.path = Path(path)
        self.max_side = max_side
        if not self.path.exists():
            raise VideoDecodeError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise VideoDecodeError(f"{self.path} is not a file")
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(f"video file {self.path} is empty (0 bytes)")
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(
                f"cannot open {self.path} as a video: {exc.strerror or exc} "
                "(not a video file, or truncated/corrupt: check that it plays in a media player)"
            ) from exc
        if not self._container.streams.video:
            kinds: list[str] = sorted({str(s.type) for s in self._container.streams}) or ["no streams"]
            self._container.close()
            raise VideoDecodeError(f"{self.path} has no video stream (it contains: {', '.join(kinds)})")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000
        self.info = VideoInfo(
            path=str(self.path),
            width=stream.codec_context.width,  # as stored; frames may be scaled down (max_side)
            height=stream.codec_context.height,
            fps=fps,
            n_frames=int(stream.frames) if stream.frames else None,
            duration_s=duration,
            rotation=0,
        )

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _rgb(self, vf: Any) -> np.ndarray:  # an av.VideoFrame
        w, h = vf.width, vf.height
        if self.max_side is None or max(w, h) <= self.max_side:
            return vf.to_ndarray(format="rgb24")
        scale = self.max_side / max(w, h)
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        return vf.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")

    def frames(self) -> Iterator[Frame]:
        import av

        index = 0
        first_time: float | None = None
        last_time = -1.0
        fallback_dt = 1.0 / self.info.fps if self.info.fps > 0 else 1.0 / 30.0
        try:
            for vf in self._container.decode(self._stream):
                rotation = int(getattr(vf, "rotation", 0) or 0)
                if index == 0:
                    self.info.rotation = rotation % 360
                t = vf.time
                if t is None:
                    t = last_time + fallback_dt if last_time >= 0 else 0.0
                if first_time is None:
                    first_time = t
                t = t - first_time
                if t <= last_time:  # broken or repeated timestamps: keep time strictly increasing
                    t = last_time + 1e-3
                last_time = t
                image = _rotate_upright(self._rgb(vf), rotation)
                yield Frame(index=index, time_s=float(t), image=image)
                index += 1
        except av.error.FFmpegError as exc:
            if index == 0:
                raise VideoDecodeError(f"{self.path}: no frame could be decoded ({exc}); the file is corrupt") from exc
            self.info.warnings.append(f"decoding stopped at frame {index} ({exc}): file truncated or corrupt")
            return
        if index == 0:
            raise VideoDecodeError(
                f"{self.path}: the video stream holds no decodable frame (truncated or corrupt file)"
            )
        expected = self.info.n_frames
        if expected and index < 0.9 * expected:
            self.info.warnings.append(
                f"decoded {index} of the {expected} frames the header announces: the file looks truncated"
            )


_END = object()


def prefetched(frames: Iterator[Frame], depth: int = 8) -> Generator[Frame, None, None]:
    """Decode ahead in a background thread (FFmpeg releases the GIL) while the caller analyses.

    At most ``depth`` frames wait in memory; errors raised by the decoder are re-raised here. Close the
    generator (``contextlib.closing``) before the source it reads: that stops and joins the thread.
    """
    import queue
    import threading

    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Queue ``item`` once there is room; False if the consumer stopped meanwhile (it takes nothing more)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    thread = threading.Thread(target=worker, name="decode-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
