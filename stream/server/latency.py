"""Where a keyframe's time goes between receipt and the dashboards: stamps per frame, percentiles per session.

``KeyframeTrace`` carries ``time.perf_counter`` stamps of one frame along its path; ``LatencyStats``
turns the traces of published keyframes into the p50/p95 figures the dashboards show under stream
health (docs/live.md, "Latency").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from stream.session.jsonsafe import JSON

# Where a keyframe's receipt-to-publication latency goes, in path order (see ``KeyframeTrace``).
LATENCY_STAGES = (
    "frame_wait",
    "ingest_queue",
    "ingest",
    "ingest_handoff",
    "keyframe_queue",
    "analyse_queue",
    "analyse",
    "store_stats",
    "publish_wait",
    "serialise",
)
WINDOW = 300  # keyframes the percentiles cover


class KeyframeTrace:
    """``time.perf_counter`` stamps of one frame on its way to the dashboards.

    ``received`` (pump) -> ``picked`` (frame loop took it from the slot) -> ``ingest_start/end``
    (model thread) -> ``queued`` (in the keyframe queue) -> ``dequeued`` (analysis loop) ->
    ``analyze_start`` / ``estimated`` / ``analyze_end`` (model thread: AU estimate, then SQLite and
    statistics) -> ``publish_start`` / ``published`` (snapshot built, serialised, offered to viewers).
    """

    __slots__ = (
        "received",
        "picked",
        "ingest_start",
        "ingest_end",
        "queued",
        "dequeued",
        "analyze_start",
        "estimated",
        "analyze_end",
    )

    def __init__(self, received: float) -> None:
        self.received = received
        self.picked = self.ingest_start = self.ingest_end = self.queued = self.dequeued = received
        self.analyze_start = self.estimated = self.analyze_end = received

    def stages(self, publish_start: float, published: float) -> list[float]:
        """Milliseconds spent in each of ``LATENCY_STAGES``."""
        stamps = (
            self.received,
            self.picked,
            self.ingest_start,
            self.ingest_end,
            self.queued,
            self.dequeued,
            self.analyze_start,
            self.estimated,
            self.analyze_end,
            publish_start,
            published,
        )
        return [(b - a) * 1000.0 for a, b in zip(stamps, stamps[1:])]


class LatencyStats:
    """Receipt-to-publication latency of the last ``WINDOW`` keyframes, in total and per stage.

    The model thread hands finished traces over with ``shown`` (a deque append, thread-safe); the
    publisher calls ``published`` after it offered a snapshot to the viewers.
    """

    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self._observe = observe  # each published keyframe's receipt-to-publication seconds (metrics)
        self._pending: deque[KeyframeTrace] = deque()
        self._rows: deque[tuple[float, ...]] = deque(maxlen=WINDOW)  # (total, *LATENCY_STAGES) in ms
        self._summary: dict[str, JSON] = {"latency_ms_p50": None, "latency_ms_p95": None, "latency_stages_ms": {}}

    def shown(self, trace: KeyframeTrace) -> None:
        """A keyframe is in the statistics: the next snapshot published shows it."""
        self._pending.append(trace)

    def take_pending(self) -> list[KeyframeTrace]:
        """The traces the snapshot about to be built shows (call before building it)."""
        traces = []
        while self._pending:
            traces.append(self._pending.popleft())
        return traces

    def published(self, traces: list[KeyframeTrace], start: float, published: float) -> None:
        """The snapshot showing ``traces`` was built from ``start`` and offered to the viewers at ``published``."""
        for trace in traces:
            self._rows.append(((published - trace.received) * 1000.0, *trace.stages(start, published)))
            if self._observe is not None:
                self._observe(published - trace.received)
        if traces:  # the figures of the next snapshots (at most one percentile call per publish)
            p50, p95 = np.percentile(np.asarray(self._rows), [50, 95], axis=0)
            self._summary = {
                "latency_ms_p50": float(p50[0]),
                "latency_ms_p95": float(p95[0]),
                # where it went, per stage of the path, over the same last keyframes: [p50, p95]
                "latency_stages_ms": {
                    name: [float(a), float(b)] for name, a, b in zip(LATENCY_STAGES, p50[1:], p95[1:])
                },
            }

    def summary(self) -> dict[str, JSON]:
        return self._summary
