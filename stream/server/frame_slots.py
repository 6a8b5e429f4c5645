"""A session's frame in shared memory: the server writes it, the session's analysis worker reads it.

A 640x480 RGB frame is 900 KB. Pickled through the worker's pipe it would be serialised, copied
through the kernel and deserialised 30 times a second per session, on the server's interpreter
lock; here the server copies it once into a slot the worker maps, and the pipe carries only the
slot's name and the frame's shape. One slot per session, reused frame after frame (a session
ingests one frame at a time, so the worker has read a frame before the next is written); a larger
frame gets a new slot. The server owns the slots and unlinks them; a worker only maps them.
"""

from __future__ import annotations

from multiprocessing import shared_memory

import numpy as np


class FrameSlot:
    """Server side: the shared memory one session's frames are written to."""

    def __init__(self) -> None:
        self._shm: shared_memory.SharedMemory | None = None

    def write(self, image: np.ndarray) -> tuple[str, tuple[int, int, int]]:
        """Copy ``image`` (H x W x 3 uint8) into the slot; returns the slot's name and the frame's shape."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a frame slot holds H x W x 3 uint8 RGB frames, got {image.dtype} {image.shape}")
        if self._shm is None or self._shm.size < image.nbytes:
            self.close()
            self._shm = shared_memory.SharedMemory(create=True, size=image.nbytes)
        np.copyto(np.ndarray(image.shape, np.uint8, buffer=self._shm.buf), image)
        height, width, channels = image.shape
        return self._shm.name, (height, width, channels)

    def close(self) -> None:
        """Unmap and remove the slot (a worker that still maps it keeps its mapping until it lets go)."""
        if self._shm is not None:
            shm, self._shm = self._shm, None
            shm.close()
            shm.unlink()


class SlotReader:
    """Worker side: reads frames from a session's slot, mapping it again when the server replaced it."""

    def __init__(self) -> None:
        self._shm: shared_memory.SharedMemory | None = None

    def read(self, name: str, shape: tuple[int, int, int]) -> np.ndarray:
        """A private copy of the frame: the pipeline may keep it after the server writes the next one."""
        if self._shm is None or self._shm.name != name:
            self.close()
            self._shm = shared_memory.SharedMemory(name=name)
        return np.ndarray(shape, np.uint8, buffer=self._shm.buf).copy()

    def close(self) -> None:
        if self._shm is not None:
            shm, self._shm = self._shm, None
            shm.close()
