"""The model threads: one bounded pool shared by every session, where a keyframe never queues behind frames.

Two kinds of job run there. *Ingest* (detect or track, keyframe filter, align) comes once per frame
the frame loop takes, and every session's frame loop always has the next one ready; *analysis* (AU
estimate, statistics, SQLite) comes once per keyframe and is what a dashboard waits for. With a plain
FIFO pool, as soon as there are more sessions than threads (or ``--model-workers 1``) a keyframe
waits behind a frame ingest of every other session. Here queued jobs run by priority (analysis
first), first come first served within a priority. A running job is never interrupted, so a keyframe
waits at most for the jobs already running; ingest jobs cannot starve, because each session has at
most one analysis job queued or running and the keyframes themselves come from ingests.

``PriorityExecutor.at(priority)`` gives an ``Executor`` that submits at that priority, for
``loop.run_in_executor``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

ANALYSIS = 0  # per keyframe: what the dashboards wait for
INGEST = 1  # per frame: the newest frame, whenever a thread is free
OTHER = 2  # loading a session's pipeline and the like


class PriorityExecutor(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "models") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.max_workers = max_workers
        self._heap: list[tuple[int, int, Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._shutdown = False
        # Daemon threads: a process that never shuts the pool down (a test app without lifespan)
        # still exits; the server's lifespan shuts it down and waits.
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}_{i}", daemon=True)
            for i in range(max_workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.submit_at(OTHER, fn, *args, **kwargs)

    def submit_at(self, priority: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._cv:
            if self._shutdown:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            heapq.heappush(self._heap, (priority, next(self._order), future, fn, args, kwargs))
            self._cv.notify()
        return future

    def at(self, priority: int) -> Executor:
        return _PriorityView(self, priority)

    def queued(self) -> int:
        with self._cv:
            return len(self._heap)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._shutdown:
                    self._cv.wait()
                if not self._heap:
                    return
                _, _, future, fn, args, kwargs = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cv:
            self._shutdown = True
            if cancel_futures:
                for _, _, future, *_ in self._heap:
                    future.cancel()
                self._heap.clear()
            self._cv.notify_all()
        if wait:
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()


class _PriorityView(Executor):
    """Submits to a ``PriorityExecutor`` at one priority; shutting a view down does nothing."""

    def __init__(self, pool: PriorityExecutor, priority: int) -> None:
        self.pool = pool
        self.priority = priority

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.pool.submit_at(self.priority, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass
