"""Server settings: one frozen object; ``serve`` flags and ``STREAM_*`` environment variables map onto it.

Every default of the live server is documented here (docs/live.md quotes these values); the analysis
itself (detector, estimator, thresholds) is configured by ``AnalysisConfig``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stream.config import AnalysisConfig
from stream.errors import ConfigError

MIN_ADMIN_KEY_CHARS = 32  # a guessable clinic key opens every session
PROCESSES_PER_CORE = 2  # the default cap on analysis worker processes, per core (``analysis_processes``)


def default_analysis_processes() -> int:
    """The default cap on analysis worker processes on this machine: ``PROCESSES_PER_CORE`` per core."""
    return PROCESSES_PER_CORE * (os.cpu_count() or 1)


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to both peers (none by default: host candidates work on a LAN)."""

    urls: str  # "stun:stun.example.org:3478" or "turn:turn.example.org:3478?transport=udp"
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"urls": self.urls}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class ServerSettings:
    # --- network ---
    host: str = "127.0.0.1"
    port: int = 8000
    # Base of the links handed out (e.g. "https://clinic.example.org"); None: taken from the request.
    public_url: str | None = None
    certfile: str | None = None  # TLS: browsers need a secure context for the camera off localhost
    keyfile: str | None = None
    ice_servers: tuple[IceServer, ...] = ()  # empty: no STUN round trip at all (closed networks)
    # --- access ---
    # Key that creating sessions and listing them needs. None: ``serve`` generates one and prints it.
    admin_key: str | None = None
    # Wrong credentials tolerated per client address within the window; beyond that every request
    # from that address gets 429 until the window has passed (guessing 300 tokens/s is not an option).
    max_failed_credentials: int = 30
    failed_credentials_window_s: float = 60.0
    # Lifetime of a clinician link in seconds, counted from when it was issued; older ones get 403
    # like any wrong token and the clinic key issues a new one. None: clinician links never expire.
    # (A patient link needs none: it stops working when its session ends.)
    link_ttl_s: float | None = None
    # --- storage ---
    # An SQLite file (one node), or a PostgreSQL URL "postgresql://user:password@host:port/db" that
    # several nodes share (stream/server/db.py).
    db_path: str = "stream-sessions.sqlite3"
    # --- several nodes (docs/scale.md) ---
    # Redis for session placement and the dashboards' fan-out; None: one node, in-process hub.
    redis_url: str | None = None
    node_url: str | None = None  # where the other nodes reach this one; None: http(s)://host:port
    node_id: str | None = None  # None: a random id at start
    lease_s: float = 10.0  # a dead node's sessions are taken over after at most this long
    # A dead node's live session that no patient reconnected to this long after its lease ran out is
    # ended (browsers notice a dead peer only after ~30 s, then the patient presses Connect again).
    orphan_end_s: float = 120.0
    # --- analysis ---
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    # Browsers send the unmirrored camera track (only the preview is mirrored with CSS), so False.
    # Set True for sources that send selfie-mirrored frames; left/right are then swapped back.
    mirrored: bool = False
    # Model threads shared by every session: detection (per latest frame) and AU estimation
    # (per keyframe) both run here, never on the event loop.
    model_workers: int = 2
    # Worker processes the sessions' pipelines (detect, track, keyframe filter, align, AU estimate)
    # run in, the least-loaded taking each new session; they start as sessions need them (a new one
    # only when every running worker has a session), so this is a cap. None: PROCESSES_PER_CORE per
    # core, so sessions up to twice the cores each have a worker and the OS shares the cores fairly
    # among them (sessions sharing a worker got half as many frames analysed as one alone; about
    # 160 MiB per worker; docs/benchmarks.md, "Several sessions"). 0: in
    # the model threads of this process, sharing its interpreter lock (3 sessions at 30 fps on 2
    # cores then skip most frames; docs/benchmarks.md, "Live"). The model threads above still store,
    # compute statistics and findings; with processes there are 2 more threads per process, which
    # mostly wait for their worker.
    analysis_processes: int | None = None
    # Keyframes waiting for the AU estimator; when full the *oldest* waiting keyframe is dropped
    # (and counted): the dashboard should show the face as it is now, not as it was.
    keyframe_queue: int = 4
    # --- dashboards ---
    dashboard_hz: float = 10.0  # snapshots coalesced to at most this rate
    client_queue: int = 4  # per-WebSocket backlog; when full the oldest snapshot is dropped
    send_timeout_s: float = 10.0  # a client whose socket accepts nothing for this long is closed
    # WebSocket permessage-deflate. Off: compressing a ~15 KB snapshot costs ~0.8 ms of CPU per viewer
    # and message (each connection compresses its own copy), which at 100 viewers x 10 Hz is most of a
    # core; with it on, 100 viewers over 3 nodes measured p99 480 ms instead of 25 ms (docs/scale.md).
    # On: ~2.6x less traffic per viewer (about 65 instead of 170 KB/s) for slow links.
    ws_compression: bool = False
    # Keyframes of AU curve in every snapshot: a client that skips updates still gets every point
    # unless it falls this far behind (the full series is in the report).
    series_tail: int = 40
    # --- limits ---
    max_body_bytes: int = 64 * 1024  # requests above this get 413 (an SDP offer is ~5 KB)
    stall_after_s: float = 5.0  # no frame for this long: the dashboard says "patient stalled"
    stall_end_s: float = 20.0  # no frame for this long: the session ends (peer closed, segment closed)
    # An answered offer whose connection is not up by then is closed (a client that vanished after
    # the answer, or an offer aiortc fails on in the background); the session goes back to waiting.
    connect_timeout_s: float = 15.0

    def validate(self) -> ServerSettings:
        problems = []
        if (self.certfile is None) != (self.keyfile is None):
            problems.append("--certfile and --keyfile go together")
        for path in (self.certfile, self.keyfile):
            if path is not None and not Path(path).is_file():
                problems.append(f"TLS file {path} does not exist")
        if self.model_workers < 1:
            problems.append(f"model workers must be >= 1, got {self.model_workers}")
        if self.analysis_processes is not None and self.analysis_processes < 0:
            problems.append(f"analysis processes must be >= 0 (0: in this process), got {self.analysis_processes}")
        if self.keyframe_queue < 1:
            problems.append(f"keyframe queue must hold >= 1 keyframe, got {self.keyframe_queue}")
        if not 0 < self.dashboard_hz <= 60:
            problems.append(f"dashboard rate must be in (0, 60] Hz, got {self.dashboard_hz}")
        if self.client_queue < 1:
            problems.append(f"client queue must hold >= 1 update, got {self.client_queue}")
        if self.admin_key is not None and len(self.admin_key) < MIN_ADMIN_KEY_CHARS:
            problems.append(f"admin key must be at least {MIN_ADMIN_KEY_CHARS} characters (a generated one is 32)")
        if not 0 < self.stall_after_s <= self.stall_end_s:
            problems.append(f"need 0 < stall_after_s <= stall_end_s, got {self.stall_after_s} and {self.stall_end_s}")
        if self.link_ttl_s is not None and not self.link_ttl_s > 0:
            problems.append(f"clinician link lifetime must be a positive number of seconds, got {self.link_ttl_s}")
        if self.connect_timeout_s <= 0 or self.max_failed_credentials < 1 or self.failed_credentials_window_s <= 0:
            problems.append("connect timeout, failed-credential limit and its window must be positive")
        if not self.lease_s > 0 or not self.orphan_end_s > 0:
            problems.append(f"lease and orphan_end_s must be positive seconds, got {self.lease_s}, {self.orphan_end_s}")
        if problems:
            raise ConfigError("; ".join(problems))
        self.analysis.validate()
        return self

    @property
    def analysis_process_count(self) -> int:
        """How many analysis worker processes to run (0: analyse in this process's model threads)."""
        if self.analysis_processes is None:
            return default_analysis_processes()
        return self.analysis_processes

    @property
    def model_threads(self) -> int:
        """Threads of the shared model pool: ``model_workers``, and 2 per analysis process to wait for it."""
        return self.model_workers + 2 * self.analysis_process_count

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"
