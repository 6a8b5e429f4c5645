"""Prometheus metrics of one serve node (``GET /metrics``, the standard text format).

Each node has its own registry (``prometheus_client.CollectorRegistry``), so several apps in one
process (tests) do not collide. Counters count what this node did since it started; a Prometheus
server sums them over nodes and takes rates (``rate(stream_frames_received_total[1m])``); the
``*_per_second`` gauges give the node's current rates without one.

| metric | kind | what |
|---|---|---|
| ``stream_sessions{state}`` | gauge | sessions held: ``live`` (a patient connected), ``idle`` (open for viewers) |
| ``stream_viewers`` | gauge | dashboards connected to this node |
| ``stream_frames_received_total`` | counter | frames decoded off patients' tracks |
| ``stream_keyframes_total`` | counter | keyframes analysed and stored |
| ``stream_frames_dropped_total{reason}`` | counter | ``stale`` (overwritten unseen), ``storage`` (no database) |
| ``stream_keyframes_dropped_total`` | counter | oldest waiting keyframe dropped (queue full) |
| ``stream_viewer_updates_dropped_total`` | counter | snapshots a slow viewer skipped |
| ``stream_frames_per_second``, ``stream_keyframes_per_second`` | gauge | over the time since the previous scrape |
| ``stream_frame_to_dashboard_seconds`` | histogram | frame received to snapshot offered to the viewers, per keyframe |
| ``stream_store_errors_total`` | counter | database calls that failed |
| ``stream_redis_errors_total``, ``stream_redis_up`` | counter, gauge | with ``--redis`` |
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

_COUNTS = (
    "frames_received",
    "keyframes",
    "frames_stale",
    "frames_dropped_storage",
    "keyframes_dropped",
    "viewer_updates_dropped",
)


def session_counts(session: Any) -> dict[str, int]:
    """The cumulative counts of a session object (``LiveSession``) as this node sees them now."""
    health = session.health
    stale = health.frames_stale_dropped
    hub = getattr(session, "hub", None)
    return {
        "frames_received": int(health.frames_received),
        "keyframes": int(health.keyframes),
        "frames_stale": int(stale),
        "frames_dropped_storage": int(health.frames_dropped_storage),
        "keyframes_dropped": int(health.keyframes_dropped),
        "viewer_updates_dropped": int(hub.dropped()) if hub is not None else 0,
    }


class NodeMetrics:
    """Counts of the sessions this node held: opened (baseline), in memory now, and gone."""

    def __init__(
        self,
        sessions: Callable[[], Iterable[Any]],
        viewers: Callable[[], int],
        store_errors: Callable[[], int],
        cluster: Any = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "stream_frame_to_dashboard_seconds",
            "frame received to snapshot offered to the viewers, per keyframe",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._sessions = sessions
        self._viewers = viewers
        self._store_errors = store_errors
        self.cluster = cluster
        self._lock = threading.Lock()
        self._baseline: dict[int, dict[str, int]] = {}  # id(session) -> its counts when this node opened it
        self._gone = dict.fromkeys(_COUNTS, 0)  # counted by sessions this node no longer holds
        self._last: tuple[float, int, int] | None = None
        self.registry.register(_Collector(self))

    def opened(self, session: Any) -> None:
        """A session loaded into this node: what it counted before (stored counts, other nodes) is not ours."""
        with self._lock:
            self._baseline[id(session)] = session_counts(session)

    def closed(self, session: Any) -> None:
        """A session leaves this node's memory: keep what it counted here."""
        with self._lock:
            base = self._baseline.pop(id(session), None)
            if base is None:
                return
            now = session_counts(session)
            for key in _COUNTS:
                self._gone[key] += max(0, now[key] - base[key])

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """(counts since start, sessions by state)."""
        with self._lock:
            totals = dict(self._gone)
            states = {"live": 0, "idle": 0}
            for session in list(self._sessions()):
                base = self._baseline.get(id(session))
                if base is None:
                    continue
                now = session_counts(session)
                for key in _COUNTS:
                    totals[key] += max(0, now[key] - base[key])
                states["live" if getattr(session, "peer", None) is not None else "idle"] += 1
        return totals, states

    def rates(self, totals: dict[str, int]) -> tuple[float | None, float | None]:
        now = time.monotonic()
        last, self._last = self._last, (now, totals["frames_received"], totals["keyframes"])
        if last is None or now - last[0] < 0.2:
            return None, None
        dt = now - last[0]
        return (totals["frames_received"] - last[1]) / dt, (totals["keyframes"] - last[2]) / dt

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, metrics: NodeMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []  # collected at scrape time

    def collect(self) -> Iterable[Any]:
        totals, states = self.m.totals()
        sessions = GaugeMetricFamily("stream_sessions", "sessions this node holds", labels=["state"])
        for state, n in states.items():
            sessions.add_metric([state], n)
        yield sessions
        yield GaugeMetricFamily("stream_viewers", "dashboards connected to this node", value=self.m._viewers())
        yield CounterMetricFamily(
            "stream_frames_received", "frames decoded off patients' tracks", value=totals["frames_received"]
        )
        yield CounterMetricFamily("stream_keyframes", "keyframes analysed and stored", value=totals["keyframes"])
        dropped = CounterMetricFamily("stream_frames_dropped", "frames not analysed", labels=["reason"])
        dropped.add_metric(["stale"], totals["frames_stale"])
        dropped.add_metric(["storage"], totals["frames_dropped_storage"])
        yield dropped
        yield CounterMetricFamily(
            "stream_keyframes_dropped", "oldest waiting keyframe dropped, queue full", value=totals["keyframes_dropped"]
        )
        yield CounterMetricFamily(
            "stream_viewer_updates_dropped", "snapshots slow viewers skipped", value=totals["viewer_updates_dropped"]
        )
        fps, kps = self.m.rates(totals)
        if fps is not None and kps is not None:
            yield GaugeMetricFamily(
                "stream_frames_per_second", "frames received per second since the last scrape", value=fps
            )
            yield GaugeMetricFamily(
                "stream_keyframes_per_second", "keyframes per second since the last scrape", value=kps
            )
        yield CounterMetricFamily("stream_store_errors", "database calls that failed", value=self.m._store_errors())
        if self.m.cluster is not None:
            yield CounterMetricFamily("stream_redis_errors", "Redis calls that failed", value=self.m.cluster.errors)
            yield GaugeMetricFamily(
                "stream_redis_up", "1 if the last heartbeat reached Redis", value=1.0 if self.m.cluster.ready else 0.0
            )
