"""Fan-out of dashboard snapshots to the WebSocket clients of one session.

Each client has its own bounded queue; ``publish`` never awaits: when a client's queue is full its
*oldest* snapshot is dropped (and counted), so a slow client skips intermediate updates and always
ends with the newest state, while the pipeline and the other clients never wait for it. Snapshots
are complete states serialised once, so a skipped one loses nothing.
"""

from __future__ import annotations

import asyncio


class Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.dropped = 0
        self.sent = 0

    def offer(self, message: str) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # policy: drop the oldest snapshot
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    def __init__(self, queue_size: int = 4) -> None:
        self.queue_size = queue_size
        self.latest: str | None = None
        self._subscribers: set[Subscriber] = set()
        self.published = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber:
        """A new client; it gets the current state at once, before any later update."""
        sub = Subscriber(self.queue_size)
        if self.latest is not None:
            sub.offer(self.latest)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, message: str) -> None:
        self.latest = message
        self.published += 1
        for sub in self._subscribers:
            sub.offer(message)

    def dropped(self) -> int:
        return sum(sub.dropped for sub in self._subscribers)
